#!/usr/bin/env node
// Asks the reference library whether a name's DM3 profile is valid, resolving everything the way
// a stock DM3 client does: @dm3-org/dm3-lib-profile 1.7.1 with an ethers 5.7.2 provider whose
// network has the given ENS registry (ENSIP-10 wildcard + EIP-3668 CCIP-read).
//
//   node check-profile.js --rpc URL --registry ADDR --name NAME [--ds NAME] [--chain-id N]
//
// - getUserProfile(provider, name): reads network.dm3.profile, parses it, and checks it with
//   checkUserProfile, which resolves addr(name) itself and requires the profile's signature to
//   recover to that address (docs/protocol.md §4.2). It throws if the check fails.
// - checkUserProfileWithAddress(profile, resolveName(name)) is asked again explicitly.
// - --ds: getDeliveryServiceProfile(name) for a delivery service's record.
//
// Prints one JSON line: {"name","address","profile","valid","deliveryService"?}. A profile that
// the library rejects prints valid:false and the library's error; exit code 0 in both cases,
// 1 only for usage or transport errors.
"use strict";

// The library logs with console.log ("[getUserProfile] Resolve User Json profile"); keep stdout
// for the one JSON line.
const print = (line) => process.stdout.write(`${line}\n`);
console.log = (...args) => console.error(...args);

const { ethers } = require("ethers");
const {
  getUserProfile,
  checkUserProfileWithAddress,
  getDeliveryServiceProfile,
} = require("@dm3-org/dm3-lib-profile");

function parseArgs(argv) {
  const args = { chainId: 31337 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case "--rpc": args.rpc = value; break;
      case "--registry": args.registry = value; break;
      case "--name": args.name = value; break;
      case "--ds": args.ds = value; break;
      case "--chain-id": args.chainId = Number(value); break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const required of ["rpc", "registry", "name"]) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const provider = new ethers.providers.StaticJsonRpcProvider(args.rpc, {
    name: "dm3-bridge-test",
    chainId: args.chainId,
    ensAddress: args.registry,
  });
  const out = { name: args.name };
  out.address = await provider.resolveName(args.name);
  try {
    out.profile = (await getUserProfile(provider, args.name)) || null;
    out.valid = out.profile !== null && out.address !== null
      && checkUserProfileWithAddress(out.profile, out.address);
  } catch (e) {
    out.profile = null;
    out.valid = false;
    out.error = String((e && e.message) || e);
  }
  if (args.ds) {
    const noLinks = async () => { throw new Error("links are not expected here"); };
    out.deliveryService = (await getDeliveryServiceProfile(args.ds, provider, noLinks)) || null;
  }
  return out;
}

main().then(
  (out) => {
    print(JSON.stringify(out));
    process.exit(0);
  },
  (e) => {
    console.error(`check-profile.js: ${String((e && e.message) || e).split("\n")[0]}`);
    process.exit(1);
  },
);

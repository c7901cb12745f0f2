#!/usr/bin/env node
// Resolves a name the way the reference DM3 libraries do: ethers 5.7.2, an ENS registry,
// ENSIP-10 wildcard resolution and EIP-3668 CCIP-read, all through provider.getResolver(name).
//
//   node resolve.js --rpc URL --registry ADDR --name NAME [--key K]... [--chain-id N] [--timeout-ms MS]
//
// Prints one JSON line:
//   {"name":…,"resolver":"0x…","address":"0x…"|null,"text":{"network.dm3.profile":…|null,"K":…}}
// A record that is not set (the gateway answered "0x") is null. Anything else — no resolver,
// a gateway error, a resolver revert such as a rejected signature — exits 1 with one line on stderr.
"use strict";

const path = require("path");
const { ethers } = require("ethers");

const PROFILE_KEY = "network.dm3.profile";

function parseArgs(argv) {
  const args = { keys: [PROFILE_KEY], chainId: 31337, timeoutMs: 20000 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case "--rpc": args.rpc = value; break;
      case "--registry": args.registry = value; break;
      case "--name": args.name = value; break;
      case "--key": if (!args.keys.includes(value)) args.keys.push(value); break;
      case "--chain-id": args.chainId = Number(value); break;
      case "--timeout-ms": args.timeoutMs = Number(value); break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  for (const required of ["rpc", "registry", "name"]) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  if (!ethers.utils.isAddress(args.registry)) throw new Error(`--registry ${args.registry} is not an address`);
  return args;
}

// ethers' Resolver turns every CALL_EXCEPTION into null, so "not set" and "the contract rejected
// the gateway's answer" look the same. Redo the call raw to tell them apart, and throw on a revert.
const resolverAbi = require(path.join(__dirname, "build", "OffchainResolver.json")).abi;
const resolverIface = new ethers.utils.Interface(resolverAbi);

async function explainNull(provider, resolver, name, inner) {
  const data = ethers.utils.hexConcat([
    "0x9061b923", // resolve(bytes,bytes), as ethers wraps it for a wildcard resolver
    ethers.utils.defaultAbiCoder.encode(["bytes", "bytes"], [ethers.utils.dnsEncode(name), inner]),
  ]);
  const result = await provider.call({ to: resolver.address, data, ccipReadEnabled: true });
  // ethers hands revert data back as the call's result; an ABI answer is a multiple of 32 bytes.
  if (ethers.utils.hexDataLength(result) % 32 !== 4) return;
  let reason = `revert data ${result}`;
  try {
    const e = resolverIface.parseError(result);
    reason = `${e.name}(${e.args.map(String).join(", ")})`;
  } catch (_) { /* not one of ours: keep the raw data */ }
  throw new Error(`resolver ${resolver.address} reverted for ${name}: ${reason}`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const provider = new ethers.providers.StaticJsonRpcProvider(args.rpc, {
    name: "dm3-bridge-test",
    chainId: args.chainId,
    ensAddress: args.registry,
  });
  const resolver = await provider.getResolver(args.name);
  if (!resolver) throw new Error(`no resolver for ${args.name} (nor a wildcard resolver on a parent)`);
  const node = ethers.utils.namehash(args.name);

  const address = await resolver.getAddress();
  if (address === null) {
    await explainNull(provider, resolver, args.name, ethers.utils.hexConcat(["0x3b3b57de", node]));
  }
  const text = {};
  for (const key of args.keys) {
    text[key] = await resolver.getText(key);
    if (text[key] === null) {
      const inner = new ethers.utils.Interface(["function text(bytes32,string)"]).encodeFunctionData("text", [node, key]);
      await explainNull(provider, resolver, args.name, inner);
    }
  }
  return { name: args.name, resolver: resolver.address, address, text };
}

function fail(e) {
  // One line: the first line of the message, without ethers' long appended JSON dump.
  const msg = String((e && (e.reason || e.message)) || e).split("\n")[0];
  console.error(`resolve.js: ${msg}`);
  process.exit(1);
}

let timeoutMs = 20000;
try {
  timeoutMs = parseArgs(process.argv.slice(2)).timeoutMs;
} catch (e) {
  fail(e);
}
setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs).unref();
main().then((out) => {
  console.log(JSON.stringify(out));
  process.exit(0);
}, fail);

#!/usr/bin/env node
// Compiles the test contracts with solc-js into build/<Contract>.json ({abi, bytecode}).
//
//   node compile.js          rewrite build/*.json
//   node compile.js --check  recompile and fail if build/*.json differ (CI gate)
//
// The artifacts are committed so the Rust tests need no Node at build time; --check keeps
// them honest. Settings are fixed (not solc's defaults) so a compiler default change cannot
// silently change the bytecode, and the metadata hash stays in the bytecode, so even a
// comment edit in a .sol file shows up as drift until the artifacts are rebuilt.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const EXPECTED_SOLC = "0.8.37";
const CONTRACTS = ["ENSRegistry", "OffchainResolver", "PlainResolver"];
const here = __dirname;
const buildDir = path.join(here, "build");

function compile() {
  const version = solc.version();
  if (!version.startsWith(EXPECTED_SOLC + "+")) {
    throw new Error(`solc ${version} found, ${EXPECTED_SOLC} expected: run scripts/install-contract-deps.sh`);
  }
  const sources = {};
  for (const name of CONTRACTS) {
    // Source keys are bare file names: they end up in the metadata hash, so no absolute paths.
    sources[`${name}.sol`] = { content: fs.readFileSync(path.join(here, `${name}.sol`), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      // Cancun runs on anvil's default hardfork and on every current chain; pinned for reproducibility.
      evmVersion: "cancun",
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = (output.errors || []).filter((e) => e.severity !== "info");
  if (problems.length > 0) {
    // Warnings count too: the contracts are small enough to keep clean.
    throw new Error("solc reported:\n" + problems.map((e) => e.formattedMessage).join("\n"));
  }
  const artifacts = {};
  for (const name of CONTRACTS) {
    const c = output.contracts[`${name}.sol`][name];
    const artifact = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
    artifacts[`${name}.json`] = JSON.stringify(artifact, null, 2) + "\n";
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes("--check");
  const artifacts = compile();
  if (check) {
    const stale = Object.keys(artifacts).filter((file) => {
      const p = path.join(buildDir, file);
      return !fs.existsSync(p) || fs.readFileSync(p, "utf8") !== artifacts[file];
    });
    if (stale.length > 0) {
      throw new Error(`build/ is out of date with the sources (${stale.join(", ")}): run node tests/contracts/compile.js and commit`);
    }
    console.log("build/ matches the sources");
    return;
  }
  fs.mkdirSync(buildDir, { recursive: true });
  for (const [file, text] of Object.entries(artifacts)) {
    fs.writeFileSync(path.join(buildDir, file), text);
    console.log(`wrote build/${file}`);
  }
}

try {
  main();
} catch (e) {
  console.error(`compile.js: ${e.message}`);
  process.exit(1);
}

#!/usr/bin/env node
'use strict';
/*
 * Reference throughput of the DM3 npm 1.7.1 libraries, for the Rust/JS ratio
 * in docs/benchmarks.md.
 *
 *   node interop/bench.js [--seconds 5] [--warmup 1]
 *
 * prints one JSON line on stdout:
 *   {"seal_per_sec":…, "open_per_sec":…, "seal_us":…, "open_us":…, …}
 *
 * seal = the current envelope format (seal-current.js, i.e. git tag 1.7.1
 *        buildEnvelop): encrypt the message to the recipient, encrypt the
 *        delivery information to the DS, sha256 of the message, Ed25519
 *        signature over the canonical metadata.
 * open = what the receiving DS / bridge does per envelope: decrypt the
 *        delivery information (DS key), decrypt the message (recipient key),
 *        verify the sender's Ed25519 message signature (checkMessageSignature).
 * Both operate on a fixed NEW message with ~200 bytes of text; one process,
 * one thread, sequential awaits (the library API is async but each call is
 * synchronous libsodium work underneath).
 *
 * Crypto backend: dm3-lib-crypto bundles a libsodium-wrappers 0.7.x build
 * that loads npm `libsodium` (0.7.16 in the lockfile). That is libsodium
 * compiled to WebAssembly; it falls back to a wasm2js (plain JS) build only
 * if WebAssembly instantiation fails. We detect which one ran and report it
 * as "backend" (expected: "wasm" on Node 20). SHA-256 and base64 come from
 * ethers 5.7.2 (pure JS).
 */
const path = require('path');

function parseArgs(argv) {
    const out = { seconds: 5, warmup: 1 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const v = Number(argv[i + 1]);
        if ((a === '--seconds' || a === '--warmup') && Number.isFinite(v) && v >= 0) {
            out[a.slice(2)] = v;
            i++;
        } else {
            process.stderr.write(`usage: node interop/bench.js [--seconds N] [--warmup N]\n(bad argument ${a})\n`);
            process.exit(2);
        }
    }
    return out;
}

// Watch for libsodium's wasm2js fallback. The fallback runs asynchronously
// after require, so wrapping it right after loading the library is in time.
const sodiumPath = require.resolve('libsodium', { paths: [path.dirname(require.resolve('@dm3-org/dm3-lib-crypto'))] });
const dm3crypto = require('@dm3-org/dm3-lib-crypto');
const libsodium = require(sodiumPath);
let usedBackup = false;
if (typeof libsodium.useBackupModule === 'function') {
    const original = libsodium.useBackupModule;
    libsodium.useBackupModule = function (...args) {
        usedBackup = true;
        return original.apply(this, args);
    };
}
const messaging = require('@dm3-org/dm3-lib-messaging');
const { stringify } = require('@dm3-org/dm3-lib-shared');
const { sealCurrent } = require('./seal-current');

const seed = (byte) => Buffer.alloc(32, byte).toString('base64');

// Run `fn` back to back for `seconds`; returns {n, ns}.
async function timeLoop(fn, seconds) {
    const budget = BigInt(Math.round(seconds * 1e9));
    const start = process.hrtime.bigint();
    let n = 0;
    let now = start;
    do {
        await fn();
        n++;
        now = process.hrtime.bigint();
    } while (now - start < budget);
    return { n, ns: Number(now - start) };
}

(async () => {
    const { seconds, warmup } = parseArgs(process.argv.slice(2));

    const sender = { enc: await dm3crypto.createKeyPair(seed(1)), sig: await dm3crypto.createSigningKeyPair(seed(1)) };
    const receiver = await dm3crypto.createKeyPair(seed(2));
    const ds = await dm3crypto.createKeyPair(seed(3));
    const from = 'alice.eth';
    const to = 'bob.eth';
    // ~200 bytes of UTF-8 text, a typical chat message with a little non-ASCII.
    const text = 'Hello Bob! This is a benchmark message of about two hundred bytes, sent over DM3 with '
        + 'end-to-end encryption. Umlauts: äöü, an emoji 👋 and a second sentence to fill it up nicely.. Regards, Alice.';
    const message = await messaging.createMessage(to, from, text, sender.sig.privateKey);

    const seal = () => sealCurrent(message, sender.sig.privateKey, receiver.publicKey, ds.publicKey);
    const envelope = await seal();
    const open = async () => {
        const di = JSON.parse(await dm3crypto.decryptAsymmetric(ds, JSON.parse(envelope.metadata.deliveryInformation)));
        const m = JSON.parse(await dm3crypto.decryptAsymmetric(receiver, JSON.parse(envelope.message)));
        if (!(await messaging.checkMessageSignature(m, sender.sig.publicKey, di.from))) throw new Error('signature check failed');
        return m;
    };
    // Correctness first: a benchmark of something broken is worthless.
    if (stringify(await open()) !== stringify(message)) throw new Error('open did not return the sealed message');

    await timeLoop(seal, warmup);
    await timeLoop(open, warmup);
    const s = await timeLoop(seal, seconds);
    const o = await timeLoop(open, seconds);

    const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
    const result = {
        seal_per_sec: round(s.n / (s.ns / 1e9), 1),
        open_per_sec: round(o.n / (o.ns / 1e9), 1),
        seal_us: round(s.ns / s.n / 1e3, 2),
        open_us: round(o.ns / o.n / 1e3, 2),
        seal_iterations: s.n,
        open_iterations: o.n,
        message_text_bytes: Buffer.byteLength(text),
        envelope_bytes: messaging.getEnvelopSize(envelope),
        backend: usedBackup ? 'wasm2js' : typeof WebAssembly === 'object' ? 'wasm' : 'unknown',
        libsodium: require(path.join(path.dirname(sodiumPath), '..', '..', 'package.json')).version,
        node: process.version,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
})().catch((e) => {
    process.stderr.write(`bench: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
});

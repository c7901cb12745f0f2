#!/usr/bin/env node
'use strict';
/*
 * Self-test of oracle.js: drives every op once through a child process, the
 * way the Rust tests use it, and checks round trips (seal -> open,
 * create_message -> check_message, random_user -> check_profile, ...).
 *
 * Run: node interop/oracle.selftest.js
 * Prints one line per check and ends with "N passed, N failed".
 *
 * A few ops are also checked byte-exact against the reference vectors
 * (sdk/tests/vectors/vectors.json in the repository, or $DM3_VECTORS).
 */
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

// ------------------------------------------------------------ oracle client
class Oracle {
    constructor() {
        this.child = spawn(process.execPath, [path.join(__dirname, 'oracle.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
        this.nextId = 1;
        this.pending = new Map();
        this.buf = '';
        this.stray = [];
        this.child.stdout.setEncoding('utf8');
        this.child.stdout.on('data', (chunk) => {
            this.buf += chunk;
            let nl;
            while ((nl = this.buf.indexOf('\n')) >= 0) {
                const line = this.buf.slice(0, nl);
                this.buf = this.buf.slice(nl + 1);
                let resp;
                try {
                    resp = JSON.parse(line);
                } catch {
                    this.stray.push(line); // anything that is not a protocol line is a bug
                    continue;
                }
                const p = this.pending.get(resp.id);
                if (p) {
                    this.pending.delete(resp.id);
                    p(resp);
                } else this.stray.push(line);
            }
        });
    }
    raw(line, id) {
        return new Promise((resolve) => {
            this.pending.set(id, resolve);
            this.child.stdin.write(line + '\n');
        });
    }
    async call(op, args) {
        const id = this.nextId++;
        const resp = await this.raw(JSON.stringify({ id, op, args }), id);
        if (!resp.ok) throw new Error(`${op}: ${resp.error}`);
        return resp.result;
    }
    // A request expected to fail; returns the error text.
    async fail(op, args) {
        const id = this.nextId++;
        const resp = await this.raw(JSON.stringify({ id, op, args }), id);
        if (resp.ok) throw new Error(`${op} unexpectedly succeeded: ${JSON.stringify(resp.result).slice(0, 200)}`);
        return resp.error;
    }
    close() {
        this.child.stdin.end();
        return new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    }
}

// ------------------------------------------------------------------ harness
let passed = 0;
let failed = 0;
let skipped = 0;
function check(name, cond, detail) {
    if (cond) {
        passed++;
        console.log(`ok   ${name}`);
    } else {
        failed++;
        console.log(`FAIL ${name}${detail === undefined ? '' : ': ' + detail}`);
    }
}
async function step(name, fn) {
    try {
        await fn();
    } catch (e) {
        failed++;
        console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    }
}
// Deep equality regardless of key order (decrypted objects come back sorted).
const eq = require('util').isDeepStrictEqual;

// The vectors the Rust SDK tests use too (sdk/tests/vectors/README.md says how they were made).
function findVectors() {
    const root = path.join(__dirname, '..');
    const candidates = [process.env.DM3_VECTORS, path.join(root, 'sdk', 'tests', 'vectors', 'vectors.json')];
    for (const c of candidates) if (c && fs.existsSync(c)) return JSON.parse(fs.readFileSync(c, 'utf8'));
    return null;
}

(async () => {
    const o = new Oracle();
    const SEED_A = Buffer.alloc(32, 1).toString('base64');
    const SEED_DS_ENC = Buffer.alloc(32, 2).toString('base64');
    const SEED_DS_SIG = Buffer.alloc(32, 3).toString('base64');

    await step('protocol robustness', async () => {
        check('ping', (await o.call('ping', {})) === 'pong');
        const bad = await o.raw('this is not json', null);
        check('bad JSON answered with id null', bad.ok === false && bad.id === null);
        check('unknown op', /unknown op/.test(await o.fail('no_such_op', {})));
        check('missing argument', /missing argument/.test(await o.fail('sign', { payload: 'x' })));
        check('library error becomes ok:false', typeof (await o.fail('decrypt_asymmetric', { keyPair: { publicKey: SEED_A, privateKey: SEED_A }, payload: { ciphertext: 'AAAA', nonce: '0x00', ephemPublicKey: SEED_A } })) === 'string');
        check('still alive after errors', (await o.call('ping', {})) === 'pong');
    });

    await step('stringify', async () => {
        check('stringify sorts and prints JS numbers', (await o.call('stringify', { value: { b: 1e21, a: [1.5, -0, 'x'] } })) === '{"a":[1.5,0,"x"],"b":1e+21}');
        check('stringify of a string adds quotes', (await o.call('stringify', { value: 'a"b' })) === '"a\\"b"');
        const t = String.raw`{"\ud83d\ude00":1,"\uFB01":2,"10":3,"9":4,"x":1E+21,"x":"\u2028\u007F\u0001\/"}`;
        check('stringify_text: UTF-16 key order, dup keys, escapes', (await o.call('stringify_text', { text: t })) === '{"10":3,"9":4,"x":"\u2028\u007f\\u0001/","\ud83d\ude00":1,"\ufb01":2}');
        check('stringify_text rejects bad JSON', /JSON/.test(await o.fail('stringify_text', { text: '{' })));
        check('sha256', (await o.call('sha256', { text: '' })) === '0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
        check('hash_message_eip191', (await o.call('hash_message_eip191', { text: 'hello' })) === '0x50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750');
    });

    const A = await o.call('keys_from_seed', { seed_b64: SEED_A });
    const dsEnc = (await o.call('keys_from_seed', { seed_b64: SEED_DS_ENC })).encryption;
    const dsSig = (await o.call('keys_from_seed', { seed_b64: SEED_DS_SIG })).signing;

    await step('keys', async () => {
        check('keys_from_seed shape', A.encryption.publicKey.length === 44 && Buffer.from(A.signing.privateKey, 'base64').length === 64);
        check('keys_from_seed: ed25519 secret = seed || pk', Buffer.from(A.signing.privateKey, 'base64').subarray(0, 32).equals(Buffer.alloc(32, 1)));
        const fromSig = await o.call('keys_from_signature', { signature: '0x' + 'ab'.repeat(65) });
        check('keys_from_signature has storageKey', typeof fromSig.storageKey === 'string');
        const again = await o.call('keys_from_seed', { seed_b64: fromSig.storageKey });
        check('keys_from_signature = keys_from_seed(storageKey)', eq(again.encryption, fromSig.encryption) && eq(again.signing, fromSig.signing));
        const msg = await o.call('storage_key_creation_message', { address: '0x9BE6CD40aB351621A61CE4b9E31117F7AcdAFF13' });
        check('storage_key_creation_message', msg.startsWith('dm3.chat wants you to sign in') && msg.endsWith('Nonce: 0xa1b38837dd52e70a250ac2bf3e19f1599833e9d30662bf69a1c12e5747ed9f65'));
    });

    const alice = await o.call('random_user', { deliveryServices: ['ds.example.eth'] });
    const bob = await o.call('random_user', { deliveryServices: ['ds.example.eth', 'ds2.example.eth'] });

    await step('profiles', async () => {
        check('random_user -> check_profile', (await o.call('check_profile', { signedUserProfile: alice.signedUserProfile, address: alice.address })) === true);
        check('check_profile with the wrong address', (await o.call('check_profile', { signedUserProfile: alice.signedUserProfile, address: bob.address })) === false);
        const tampered = { ...alice.signedUserProfile, profile: { ...alice.signedUserProfile.profile, deliveryServices: ['evil.eth'] } };
        check('check_profile of a tampered profile', (await o.call('check_profile', { signedUserProfile: tampered, address: alice.address })) === false);
        const fromSig = await o.call('keys_from_signature', { signature: alice.storageKeySignature });
        check('random_user keys = keys_from_signature(storageKeySignature)', eq(fromSig, alice.keys));
        check('profile_creation_message', (await o.call('profile_creation_message', { profile: alice.signedUserProfile.profile, address: alice.address })) === alice.profileCreationMessage);
        const w = await o.call('random_user', { nonce: '0x123' });
        check('random_user with a widget nonce', w.nonce === '0x123' && w.storageKeyCreationMessage.endsWith('Nonce: 0x123'));
        check('  ... and its profile verifies', (await o.call('check_profile', { signedUserProfile: w.signedUserProfile, address: w.address })) === true);
    });

    const sk = alice.keys.signing.privateKey;
    const spk = alice.keys.signing.publicKey;
    let newMsg;
    await step('messages', async () => {
        const base = { to: bob.ensName, from: alice.ensName, signingPrivateKey: sk };
        newMsg = await o.call('create_message', { ...base, type: 'NEW', text: 'hello \u{1F44B}', attachments: [{ name: 'a.txt', data: 'data:text/plain;base64,QQ==' }] });
        check('create_message NEW -> check_message', (await o.call('check_message', { message: newMsg.message, publicSigningKey: spk, from: alice.ensName })) === true);
        check('message_hash = create_message hash', (await o.call('message_hash', { message: newMsg.message })) === newMsg.messageHash);
        check('check_message with the wrong from', (await o.call('check_message', { message: newMsg.message, publicSigningKey: spk, from: bob.ensName })) === false);
        const tampered = { ...newMsg.message, message: 'hello!' };
        check('check_message of tampered text', (await o.call('check_message', { message: tampered, publicSigningKey: spk, from: alice.ensName })) === false);
        const ref = newMsg.messageHash;
        const expect = {
            EDIT: (m) => m.message === 'edited' && m.metadata.referenceMessageHash === ref,
            REPLY: (m) => m.message === 'reply' && m.metadata.referenceMessageHash === ref,
            REACTION: (m) => eq(m.attachments, []) && m.metadata.referenceMessageHash === ref,
            DELETE_REQUEST: (m) => !('message' in m) && !('attachments' in m),
            READ_RECEIVED: (m) => m.message === 'READ_RECEIVED' && eq(m.attachments, []),
            READ_OPENED: (m) => m.message === 'READ_OPENED' && eq(m.attachments, []),
        };
        const text = { EDIT: 'edited', REPLY: 'reply', REACTION: '\u2764\uFE0F' };
        for (const type of Object.keys(expect)) {
            const m = await o.call('create_message', { ...base, type, text: text[type], referenceMessageHash: ref });
            const ok = await o.call('check_message', { message: m.message, publicSigningKey: spk, from: alice.ensName });
            check(`create_message ${type} -> check_message`, ok === true && m.message.metadata.type === type && expect[type](m.message));
        }
        check('create_message EDIT without a reference', /referenceMessageHash/.test(await o.fail('create_message', { ...base, type: 'EDIT', text: 'x' })));
        const pinned = await o.call('create_message', { ...base, type: 'NEW', text: 'x', timestamp: 1700000000000 });
        check('create_message pins the timestamp', pinned.message.metadata.timestamp === 1700000000000);
        const now = await o.call('create_message', { ...base, type: 'NEW', text: 'x' });
        check('  ... and only for that request', Math.abs(now.message.metadata.timestamp - Date.now()) < 60000);
    });

    const recvKp = bob.keys.encryption;
    await step('envelopes', async () => {
        for (const format of ['current', 'npm']) {
            const env = await o.call('seal', {
                message: newMsg.message,
                senderSigningPrivateKey: sk,
                recipientPublicEncryptionKey: bob.signedUserProfile.profile.publicEncryptionKey,
                dsPublicEncryptionKey: dsEnc.publicKey,
                format,
            });
            const hashField = format === 'current' ? 'messageHash' : 'encryptedMessageHash';
            check(`seal ${format}: metadata fields`, eq(Object.keys(env.metadata).sort(), ['deliveryInformation', 'encryptionScheme', hashField, 'signature', 'version'].sort()));
            if (format === 'current') check('seal current: messageHash = message hash', env.metadata.messageHash === newMsg.messageHash);
            const opened = await o.call('open', { envelope: env, receiverEncryptionKeyPair: recvKp, dsEncryptionKeyPair: dsEnc });
            check(`seal ${format} -> open`, eq(opened.message, newMsg.message) && opened.messageHash === newMsg.messageHash);
            check(`  ... deliveryInformation`, eq(opened.deliveryInformation, { to: bob.ensName, from: alice.ensName }));
            check(`seal ${format} -> verify_envelope_metadata`, (await o.call('verify_envelope_metadata', { envelope: env, senderPublicSigningKey: spk })) === true);
            check(`  ... wrong key`, (await o.call('verify_envelope_metadata', { envelope: env, senderPublicSigningKey: bob.keys.signing.publicKey })) === false);
            check(`open ${format} as JSON text`, eq((await o.call('open', { envelope: JSON.stringify(env), receiverEncryptionKeyPair: recvKp })).message, newMsg.message));
            check(`open ${format} with the wrong key fails`, typeof (await o.fail('open', { envelope: env, receiverEncryptionKeyPair: alice.keys.encryption })) === 'string');
            const size = await o.call('envelope_size', { envelope: env });
            check(`envelope_size ${format}`, size === Buffer.byteLength(await o.call('stringify', { value: env })));
        }
    });

    await step('postmarks', async () => {
        const env = await o.call('seal', {
            message: newMsg.message,
            senderSigningPrivateKey: sk,
            recipientPublicEncryptionKey: recvKp.publicKey,
            dsPublicEncryptionKey: dsEnc.publicKey,
        });
        const T = 1700000100000;
        const stored = await o.call('add_postmark', {
            envelope: env,
            receiverPublicEncryptionKey: recvKp.publicKey,
            dsSigningPrivateKey: dsSig.privateKey,
            dsEncryptionKeyPair: dsEnc,
            timestamp: T,
        });
        check('add_postmark adds a string postmark', typeof stored.postmark === 'string');
        check('add_postmark with the DS key stores plain deliveryInformation', eq(stored.metadata.deliveryInformation, { to: bob.ensName, from: alice.ensName }));
        const pm = await o.call('open_postmark', { postmark: stored.postmark, receiverEncryptionKeyPair: recvKp });
        check('open_postmark', pm.incommingTimestamp === T && /^0x[0-9a-f]{64}$/.test(pm.messageHash));
        check('postmark messageHash = EIP-191 of the quoted message', pm.messageHash === (await o.call('hash_message_eip191', { text: JSON.stringify(env.message) })));
        check('add_postmark -> verify_postmark', (await o.call('verify_postmark', { envelope: stored, postmark: pm, dsPublicSigningKey: dsSig.publicKey })) === true);
        check('verify_postmark wrong DS key', (await o.call('verify_postmark', { envelope: stored, postmark: pm, dsPublicSigningKey: spk })) === false);
        check('verify_postmark tampered timestamp', (await o.call('verify_postmark', { envelope: stored, postmark: { ...pm, incommingTimestamp: T + 1 }, dsPublicSigningKey: dsSig.publicKey })) === false);
        const other = await o.call('seal', { message: newMsg.message, senderSigningPrivateKey: sk, recipientPublicEncryptionKey: recvKp.publicKey, dsPublicEncryptionKey: dsEnc.publicKey });
        check('verify_postmark against another envelope', (await o.call('verify_postmark', { envelope: other, postmark: pm, dsPublicSigningKey: dsSig.publicKey })) === false);
        const opened = await o.call('open', { envelope: stored, receiverEncryptionKeyPair: recvKp });
        check('open returns the postmark and plain deliveryInformation', eq(opened.postmark, pm) && eq(opened.deliveryInformation, { to: bob.ensName, from: alice.ensName }));
    });

    await step('primitives', async () => {
        const enc = await o.call('encrypt_asymmetric', { publicKey: recvKp.publicKey, payload: 'hi \u00fc' });
        check('encrypt_asymmetric pads to 2048', Buffer.from(enc.ciphertext, 'base64').length === 2048 + 16);
        check('encrypt_asymmetric -> decrypt_asymmetric', (await o.call('decrypt_asymmetric', { keyPair: recvKp, payload: enc })) === 'hi \u00fc');
        const enc1 = await o.call('encrypt_asymmetric', { publicKey: recvKp.publicKey, payload: 'abc', padding: 1 });
        check('padding 1', Buffer.from(enc1.ciphertext, 'base64').length === 4 + 16);
        check('  ... decrypts with padding 1', (await o.call('decrypt_asymmetric', { keyPair: recvKp, payload: JSON.stringify(enc1), padding: 1 })) === 'abc');
        const det = { ephemeralSeed: SEED_A, nonce: '0x000102030405060708090a0b' };
        const d1 = await o.call('encrypt_asymmetric', { publicKey: recvKp.publicKey, payload: 'same', deterministic: det });
        const d2 = await o.call('encrypt_asymmetric', { publicKey: recvKp.publicKey, payload: 'same', deterministic: det });
        check('encrypt_asymmetric deterministic', eq(d1, d2) && d1.nonce === det.nonce && d1.ephemPublicKey === A.encryption.publicKey);
        check('  ... decrypts', (await o.call('decrypt_asymmetric', { keyPair: recvKp, payload: d1 })) === 'same');
        const sig = await o.call('sign', { privateKey: sk, payload: 'x' });
        check('sign -> check_signature', (await o.call('check_signature', { publicKey: spk, payload: 'x', signature: sig })) === true);
        check('check_signature of other payload', (await o.call('check_signature', { publicKey: spk, payload: 'y', signature: sig })) === false);
        const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJhY2NvdW50IjoiYSJ9.c2ln';
        const cs = await o.call('sign_challenge', { challenge: jwt, signingPrivateKey: sk });
        check('sign_challenge = Ed25519 over the JWT text', (await o.call('check_signature', { publicKey: spk, payload: jwt, signature: cs })) === true);
    });

    const v = findVectors();
    if (!v) {
        // The vectors are in the repository: missing means a broken checkout, not a skip.
        failed++;
        console.log('FAIL reference vectors not found (sdk/tests/vectors/vectors.json or $DM3_VECTORS)');
    } else {
        await step('shared vectors', async () => {
            const ua = v.users.alice;
            const k = await o.call('keys_from_signature', { signature: ua.storageKeySignature });
            check('vectors: alice keys from signature', k.storageKey === ua.storageKey_base64 && k.encryption.publicKey === ua.keys.encryptionKeyPair.publicKey && k.signing.privateKey === ua.keys.signingKeyPair.privateKey);
            check('vectors: alice profile', (await o.call('check_profile', { signedUserProfile: ua.signedUserProfile, address: v.wallets.alice.address })) === true);
            const m = v.messages.NEW.message;
            const built = await o.call('create_message', {
                type: 'NEW', to: m.metadata.to, from: m.metadata.from, text: m.message, attachments: m.attachments,
                signingPrivateKey: ua.keys.signingKeyPair.privateKey, timestamp: m.metadata.timestamp,
            });
            check('vectors: NEW message byte-exact', built.messageHash === v.messages.NEW.messageHash_sha256_of_stringify_message);
            const bobKp = v.users.bob.keys.encryptionKeyPair;
            const dsKp = v.deliveryService.keys.encryptionKeyPair;
            for (const f of ['npm_1_7_1_format', 'repo_tag_1_7_1_format']) {
                const e = v.envelopes[f];
                const op = await o.call('open', { envelope: e.encryptedEnvelop, receiverEncryptionKeyPair: bobKp, dsEncryptionKeyPair: dsKp });
                check(`vectors: open ${f}`, eq(op.message, e.decrypted.message) && eq(op.deliveryInformation, e.decrypted.deliveryInformation_by_DS));
                check(`vectors: verify ${f} metadata`, (await o.call('verify_envelope_metadata', { envelope: e.encryptedEnvelop, senderPublicSigningKey: ua.keys.signingKeyPair.publicKey })) === true);
                check(`vectors: envelope_size ${f}`, (await o.call('envelope_size', { envelope: e.encryptedEnvelop })) === e.envelopSizeBytes_getEnvelopSize);
            }
            // Byte-exact sealing with the vectors' ephemeral seeds and nonces.
            const formats = { npm_1_7_1_format: 'npm', repo_tag_1_7_1_format: 'current' };
            for (const [f, format] of Object.entries(formats)) {
                const e = v.envelopes[f];
                const sealed = await o.call('seal', {
                    message: v.messages.NEW.message,
                    senderSigningPrivateKey: ua.keys.signingKeyPair.privateKey,
                    recipientPublicEncryptionKey: v.users.bob.keys.encryptionKeyPair.publicKey,
                    dsPublicEncryptionKey: dsKp.publicKey,
                    format,
                    deterministic: e.encryptionSteps.map((s) => ({ ephemeralSeed: s.ephemeralSeed, nonce: s.nonce })),
                });
                check(`vectors: seal ${format} byte-exact`, JSON.stringify(sealed) === JSON.stringify(e.encryptedEnvelop));
            }
            const st = v.postmark.storedEnvelope_as_returned_by_GET_incoming;
            const pm = await o.call('open_postmark', { postmark: st.postmark, receiverEncryptionKeyPair: bobKp });
            check('vectors: open_postmark', eq(pm, v.postmark.postmarkPlaintext));
            check('vectors: verify_postmark', (await o.call('verify_postmark', { envelope: st, postmark: pm, dsPublicSigningKey: v.deliveryService.keys.signingKeyPair.publicKey })) === true);
            const cs = await o.call('sign_challenge', { challenge: v.auth.challengeJwt, signingPrivateKey: ua.keys.signingKeyPair.privateKey });
            check('vectors: sign_challenge', cs === v.auth.signature_ed25519_over_utf8_of_whole_jwt);
        });
    }

    check('nothing but protocol lines on stdout', o.stray.length === 0, o.stray.slice(0, 3).join(' | '));
    const code = await o.close();
    check('oracle exits 0 when stdin closes', code === 0, `exit ${code}`);
    console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
    process.exit(failed === 0 ? 0 : 1);
})().catch((e) => {
    console.log(`FAIL harness: ${e && e.stack ? e.stack : e}`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1);
});

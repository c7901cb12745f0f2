#!/usr/bin/env node
'use strict';
/*
 * DM3 reference oracle.
 *
 * A long-running process that answers questions with the *published*
 * @dm3-org/dm3-lib-* 1.7.1 libraries, so that the Rust crate can be tested
 * against the real thing instead of against our reading of it.
 *
 * Protocol: newline-delimited JSON.
 *   stdin : {"id":N,"op":"...","args":{...}}
 *   stdout: {"id":N,"ok":true,"result":...} | {"id":N,"ok":false,"error":"..."}
 * Exactly one stdout line per request line, in request order. Nothing else
 * goes to stdout (library logging is diverted to stderr). The process exits
 * when stdin closes, after answering what it has read.
 *
 * Requests are handled strictly one after another. That keeps answers in
 * order and makes the clock pin of `create_message`/`add_postmark` safe: no
 * other request can observe the pinned Date.
 *
 * The ops (OPS below) and their argument/result shapes are listed in
 * interop/README.md; docs/protocol.md explains the formats.
 */

// Keep stdout clean for the protocol: everything a library prints goes to
// stderr. This must run before the libraries are loaded.
const protocolOut = process.stdout;
for (const level of ['log', 'info', 'debug', 'warn', 'trace']) {
    console[level] = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
}

const readline = require('readline');
const { ethers } = require('ethers');
// ensNormalize is exported by ethers' hash package, not by ethers.utils.
const ensHash = require('@ethersproject/hash');
const crypto = require('@dm3-org/dm3-lib-crypto');
const profileLib = require('@dm3-org/dm3-lib-profile');
const messaging = require('@dm3-org/dm3-lib-messaging');
const shared = require('@dm3-org/dm3-lib-shared');
const delivery = require('@dm3-org/dm3-lib-delivery');
const { sealCurrent, deterministicEncryptor } = require('./seal-current');

// The one canonical JSON function of the protocol (safe-stable-stringify
// 2.4.3 wrapped by dm3-lib-shared). Never use a copy.
const { stringify, sha256 } = shared;

// ------------------------------------------------------------------ helpers

class BadRequest extends Error {}

function need(args, name, type) {
    const v = args[name];
    if (v === undefined || v === null) throw new BadRequest(`missing argument "${name}"`);
    if (type === 'array' ? !Array.isArray(v) : typeof v !== type) {
        throw new BadRequest(`argument "${name}" must be ${type === 'array' ? 'an array' : 'a ' + type}`);
    }
    return v;
}

function opt(args, name, type) {
    return args[name] === undefined || args[name] === null ? undefined : need(args, name, type);
}

// Envelopes and encrypted payloads may arrive either as objects or as the
// JSON text that travels on the wire; accept both.
function asObject(v, what) {
    if (typeof v === 'string') {
        try {
            return JSON.parse(v);
        } catch (e) {
            throw new BadRequest(`${what} is not valid JSON: ${e.message}`);
        }
    }
    if (v === null || typeof v !== 'object') throw new BadRequest(`${what} must be an object or JSON text`);
    return v;
}

// A required argument that is an object or its JSON text.
function objArg(args, name) {
    if (args[name] === undefined || args[name] === null) throw new BadRequest(`missing argument "${name}"`);
    return asObject(args[name], name);
}

function keyPair(v, what) {
    const kp = asObject(v, what);
    if (typeof kp.publicKey !== 'string' || typeof kp.privateKey !== 'string') {
        throw new BadRequest(`${what} must be {publicKey, privateKey}`);
    }
    return kp;
}

// The libraries read the clock through `new Date()`. To let tests build
// byte-exact messages/postmarks we swap in a Date whose "now" is fixed for
// the duration of one request (safe because requests run serially).
const RealDate = Date;
async function withClock(ts, fn) {
    if (ts === undefined) return fn();
    if (typeof ts !== 'number' || !Number.isFinite(ts)) throw new BadRequest('timestamp must be a finite number');
    class PinnedDate extends RealDate {
        constructor(...a) {
            if (a.length === 0) super(ts);
            else super(...a);
        }
        static now() {
            return ts;
        }
    }
    global.Date = PinnedDate;
    try {
        return await fn();
    } finally {
        global.Date = RealDate;
    }
}

// The shape of the Rust `dm3 keys` command.
function keysShape(encryptionKeyPair, signingKeyPair, storageKey) {
    const out = {
        encryption: { publicKey: encryptionKeyPair.publicKey, privateKey: encryptionKeyPair.privateKey },
        signing: { publicKey: signingKeyPair.publicKey, privateKey: signingKeyPair.privateKey },
    };
    if (storageKey !== undefined) out.storageKey = storageKey;
    return out;
}

const messageHash = (message) => sha256(stringify(message));

// Envelope metadata is signed over its canonical form without `signature`,
// unknown fields included.
function metadataWithoutSignature(metadata) {
    const m = { ...metadata };
    delete m.signature;
    return m;
}

// ---------------------------------------------------------------------- ops

// One envelope sealed by the reference libraries, in either format (docs/protocol.md P1).
async function sealEnvelope(a) {
    const message = objArg(a, 'message');
    const senderSk = need(a, 'senderSigningPrivateKey', 'string');
    const recipientPk = need(a, 'recipientPublicEncryptionKey', 'string');
    const dsPk = need(a, 'dsPublicEncryptionKey', 'string');
    const format = opt(a, 'format', 'string') ?? 'current';
    // Optional [{ephemeralSeed, nonce}] x2 (message, then delivery
    // information) for byte-exact comparisons; random otherwise.
    const steps = opt(a, 'deterministic', 'array');
    const encryptAsymmetric = steps ? deterministicEncryptor(steps) : crypto.encryptAsymmetric;
    const md = message.metadata;
    if (!md || typeof md.to !== 'string' || typeof md.from !== 'string') {
        throw new BadRequest('message.metadata.to/from must be strings');
    }
    if (format === 'npm') {
        // npm 1.7.1 dist: metadata.encryptedMessageHash (docs/protocol.md P1).
        const { encryptedEnvelop } = await messaging.buildEnvelop(message, encryptAsymmetric, {
            to: { ensName: md.to, profile: { publicEncryptionKey: recipientPk } },
            from: { ensName: md.from },
            deliverServiceProfile: { publicEncryptionKey: dsPk, url: '' },
            keys: { signingKeyPair: { privateKey: senderSk } },
        });
        return encryptedEnvelop;
    }
    if (format !== 'current') throw new BadRequest('format must be "current" or "npm"');
    // Git tag 1.7.1 / develop format: metadata.messageHash.
    return sealCurrent(message, senderSk, recipientPk, dsPk, encryptAsymmetric);
}

const OPS = {
    ping: async () => 'pong',

    // --- canonical JSON -------------------------------------------------
    stringify: async (a) => {
        if (!('value' in a)) throw new BadRequest('missing argument "value"');
        return stringify(a.value);
    },
    // For raw JSON text: the request line itself is parsed by JSON.parse
    // too, but passing the text keeps odd spellings (1E+21, \u00E9, dup keys)
    // out of the transport and inside JSON.parse exactly as a DS would see them.
    stringify_text: async (a) => stringify(JSON.parse(need(a, 'text', 'string'))),
    sha256: async (a) => sha256(need(a, 'text', 'string')),
    message_hash: async (a) => messageHash(objArg(a, 'message')),

    // --- keys -----------------------------------------------------------
    keys_from_seed: async (a) => {
        const seed = need(a, 'seed_b64', 'string');
        return keysShape(await crypto.createKeyPair(seed), await crypto.createSigningKeyPair(seed));
    },
    keys_from_signature: async (a) => {
        const storageKey = await crypto.createStorageKey(need(a, 'signature', 'string'));
        // createProfileKeys is what the profile library runs on a storage key;
        // its nonce argument only feeds storageEncryptionNonce.
        const k = await profileLib.createProfileKeys(storageKey, profileLib.DEFAULT_NONCE);
        return keysShape(k.encryptionKeyPair, k.signingKeyPair, storageKey);
    },
    storage_key_creation_message: async (a) =>
        crypto.getStorageKeyCreationMessage(opt(a, 'nonce', 'string') ?? profileLib.DEFAULT_NONCE, need(a, 'address', 'string')),

    // --- profiles -------------------------------------------------------
    random_user: async (a) => {
        const deliveryServices = opt(a, 'deliveryServices', 'array') ?? ['ds.example.eth'];
        const nonce = opt(a, 'nonce', 'string');
        const wallet = ethers.Wallet.createRandom();
        const signer = (msg) => wallet.signMessage(msg);
        const usedNonce = nonce ?? profileLib.DEFAULT_NONCE;
        // personal_sign is deterministic (RFC 6979), so this is the very
        // signature createProfile computes internally; we keep it for output.
        const storageKeyCreationMessage = crypto.getStorageKeyCreationMessage(usedNonce, wallet.address);
        const storageKeySignature = await signer(storageKeyCreationMessage);
        const storageKey = await crypto.createStorageKey(storageKeySignature);
        let keys, signedUserProfile;
        if (nonce === undefined) {
            // createProfile hard-wires DEFAULT_NONCE (it ignores options.nonce),
            // so it is the real path only for the default nonce.
            const created = await profileLib.createProfile(wallet.address, deliveryServices, null, { signer });
            keys = created.keys;
            signedUserProfile = created.signedProfile;
            if (keys.storageEncryptionKey !== storageKey) throw new Error('internal: storage key mismatch');
        } else {
            // The messenger-widget path for a configured nonce: same library
            // steps createProfile runs, with the caller's nonce.
            keys = await profileLib.createProfileKeys(storageKey, nonce);
            const profile = {
                publicEncryptionKey: keys.encryptionKeyPair.publicKey,
                publicSigningKey: keys.signingKeyPair.publicKey,
                deliveryServices,
            };
            const signature = await signer(profileLib.getProfileCreationMessage(stringify(profile), wallet.address));
            signedUserProfile = { profile, signature };
        }
        return {
            address: wallet.address,
            privateKey: wallet.privateKey,
            ensName: `${wallet.address.toLowerCase()}.addr.dm3.eth`,
            nonce: usedNonce,
            storageKeyCreationMessage,
            storageKeySignature,
            keys: keysShape(keys.encryptionKeyPair, keys.signingKeyPair, storageKey),
            signedUserProfile,
            profileCreationMessage: profileLib.getProfileCreationMessage(stringify(signedUserProfile.profile), wallet.address),
        };
    },
    check_profile: async (a) =>
        profileLib.checkUserProfileWithAddress(objArg(a, 'signedUserProfile'), need(a, 'address', 'string')),
    profile_creation_message: async (a) =>
        profileLib.getProfileCreationMessage(stringify(objArg(a, 'profile')), need(a, 'address', 'string')),

    // --- messages -------------------------------------------------------
    create_message: async (a) => {
        const type = need(a, 'type', 'string');
        const to = need(a, 'to', 'string');
        const from = need(a, 'from', 'string');
        const sk = need(a, 'signingPrivateKey', 'string');
        const text = opt(a, 'text', 'string');
        const ref = opt(a, 'referenceMessageHash', 'string');
        const attachments = opt(a, 'attachments', 'array');
        const needRef = () => {
            if (ref === undefined) throw new BadRequest(`type ${type} needs "referenceMessageHash"`);
            return ref;
        };
        const build = {
            NEW: () => messaging.createMessage(to, from, text, sk, attachments),
            EDIT: () => messaging.createEditMessage(to, from, text, sk, needRef(), attachments),
            REPLY: () => messaging.createReplyMessage(to, from, text, sk, needRef(), attachments),
            REACTION: () => messaging.createReactionMessage(to, from, text, sk, needRef()),
            DELETE_REQUEST: () => messaging.createDeleteRequestMessage(to, from, sk, needRef()),
            // The messenger passes the type name itself as the message text.
            READ_RECEIVED: () => messaging.createReadReceiveMessage(to, from, text ?? 'READ_RECEIVED', sk, needRef()),
            READ_OPENED: () => messaging.createReadOpenMessage(to, from, text ?? 'READ_OPENED', sk, needRef()),
        }[type];
        if (!build) throw new BadRequest(`unknown message type "${type}"`);
        // The builders keep `undefined` members; a round trip through JSON
        // gives the object a receiver actually sees (same canonical bytes).
        const message = JSON.parse(JSON.stringify(await withClock(opt(a, 'timestamp', 'number'), build)));
        return { message, messageHash: messageHash(message) };
    },
    check_message: async (a) =>
        messaging.checkMessageSignature(
            objArg(a, 'message'),
            need(a, 'publicSigningKey', 'string'),
            need(a, 'from', 'string'),
        ),

    // --- envelopes ------------------------------------------------------
    // `asText`: the envelope as the messenger puts it on the wire, JSON.stringify's text (P5),
    // for byte-exact comparisons of what carries it (the gateway codec, docs/gateway.md).
    seal: async (a) => {
        const envelope = await sealEnvelope(a);
        return opt(a, 'asText', 'boolean') ? JSON.stringify(envelope) : envelope;
    },
    open: async (a) => {
        const env = objArg(a, 'envelope');
        const receiver = keyPair(objArg(a, 'receiverEncryptionKeyPair'), 'receiverEncryptionKeyPair');
        const dsKp = a.dsEncryptionKeyPair == null ? undefined : keyPair(a.dsEncryptionKeyPair, 'dsEncryptionKeyPair');
        if (typeof env.message !== 'string' || !env.metadata || typeof env.metadata !== 'object') {
            throw new BadRequest('envelope must have a string "message" and an object "metadata"');
        }
        const message = JSON.parse(await crypto.decryptAsymmetric(receiver, JSON.parse(env.message)));
        const out = { message, messageHash: messageHash(message) };
        const di = env.metadata.deliveryInformation;
        if (di !== null && typeof di === 'object') {
            out.deliveryInformation = di; // stored form: the DS already decrypted it (P9)
        } else if (typeof di === 'string' && dsKp) {
            out.deliveryInformation = JSON.parse(await crypto.decryptAsymmetric(dsKp, JSON.parse(di)));
        }
        if (typeof env.postmark === 'string') {
            out.postmark = JSON.parse(await crypto.decryptAsymmetric(receiver, JSON.parse(env.postmark)));
        }
        return out;
    },
    verify_envelope_metadata: async (a) => {
        const env = objArg(a, 'envelope');
        if (!env.metadata || typeof env.metadata.signature !== 'string') {
            throw new BadRequest('envelope.metadata.signature must be a string');
        }
        return crypto.checkSignature(
            need(a, 'senderPublicSigningKey', 'string'),
            stringify(metadataWithoutSignature(env.metadata)),
            env.metadata.signature,
        );
    },
    envelope_size: async (a) => messaging.getEnvelopSize(objArg(a, 'envelope')),

    // --- postmarks (DS side, §8) -----------------------------------------
    add_postmark: async (a) => {
        const env = objArg(a, 'envelope');
        const receiverPk = need(a, 'receiverPublicEncryptionKey', 'string');
        const dsSk = need(a, 'dsSigningPrivateKey', 'string');
        const dsKp = a.dsEncryptionKeyPair == null ? undefined : keyPair(a.dsEncryptionKeyPair, 'dsEncryptionKeyPair');
        if (typeof env.message !== 'string') throw new BadRequest('envelope.message must be a string');
        const payload = await withClock(opt(a, 'timestamp', 'number'), () => delivery.addPostmark(env, receiverPk, dsSk));
        const out = { ...env, postmark: stringify(payload) };
        // With the DS key, also produce the stored form the DS keeps and
        // delivers: deliveryInformation replaced by its plaintext (P9).
        if (dsKp && typeof env.metadata?.deliveryInformation === 'string') {
            const di = await delivery.decryptDeliveryInformation(env, dsKp);
            out.metadata = { ...env.metadata, deliveryInformation: di };
        }
        return out;
    },
    open_postmark: async (a) => {
        const receiver = keyPair(objArg(a, 'receiverEncryptionKeyPair'), 'receiverEncryptionKeyPair');
        return JSON.parse(await crypto.decryptAsymmetric(receiver, objArg(a, 'postmark')));
    },
    // Postmark verification as docs/protocol.md §8 describes it (no library
    // function exists; the reference clients never verify postmarks).
    verify_postmark: async (a) => {
        const env = objArg(a, 'envelope');
        const pm = objArg(a, 'postmark');
        const dsPk = need(a, 'dsPublicSigningKey', 'string');
        if (typeof env.message !== 'string' || typeof pm.signature !== 'string') return false;
        if (pm.messageHash !== ethers.utils.hashMessage(stringify(env.message))) return false;
        const signed = sha256(stringify({ incommingTimestamp: pm.incommingTimestamp, messageHash: pm.messageHash }));
        return crypto.checkSignature(dsPk, signed, pm.signature);
    },

    // --- primitives -----------------------------------------------------
    encrypt_asymmetric: async (a) => {
        // Optional {ephemeralSeed, nonce} for a reproducible ciphertext.
        const det = a.deterministic == null ? undefined : objArg(a, 'deterministic');
        const encrypt = det ? deterministicEncryptor([det]) : crypto.encryptAsymmetric;
        return encrypt(need(a, 'publicKey', 'string'), need(a, 'payload', 'string'), opt(a, 'padding', 'number'));
    },
    decrypt_asymmetric: async (a) =>
        crypto.decryptAsymmetric(
            keyPair(objArg(a, 'keyPair'), 'keyPair'),
            objArg(a, 'payload'),
            opt(a, 'padding', 'number'),
        ),
    sign: async (a) => crypto.sign(need(a, 'privateKey', 'string'), need(a, 'payload', 'string')),
    check_signature: async (a) =>
        crypto.checkSignature(need(a, 'publicKey', 'string'), need(a, 'payload', 'string'), need(a, 'signature', 'string')),
    hash_message_eip191: async (a) => ethers.utils.hashMessage(need(a, 'text', 'string')),

    // --- auth (§9.2) ----------------------------------------------------
    // The client signs the UTF-8 of the whole challenge JWT string verbatim.
    sign_challenge: async (a) => crypto.sign(need(a, 'signingPrivateKey', 'string'), need(a, 'challenge', 'string')),
    // ethers 5.7.2's ENS normalization and namehash, as the reference clients resolve names:
    // {name, namehash} or {error} when ethers refuses the name.
    ens_normalize: async (a) => {
        const name = need(a, 'name', 'string');
        try {
            return { name: ensHash.ensNormalize(name), namehash: ensHash.namehash(name) };
        } catch (e) {
            return { error: errorText(e) };
        }
    },
};

// ------------------------------------------------------------------ driver

function errorText(e) {
    if (e instanceof Error) return e.message || e.name;
    if (typeof e === 'string') return e;
    try {
        return JSON.stringify(e) ?? String(e);
    } catch {
        return String(e);
    }
}

async function handle(line) {
    let id = null;
    try {
        let req;
        try {
            req = JSON.parse(line);
        } catch (e) {
            throw new BadRequest(`request is not JSON: ${e.message}`);
        }
        if (req === null || typeof req !== 'object' || Array.isArray(req)) throw new BadRequest('request must be an object');
        id = req.id === undefined ? null : req.id;
        const op = req.op;
        if (typeof op !== 'string' || !Object.prototype.hasOwnProperty.call(OPS, op)) {
            throw new BadRequest(`unknown op ${JSON.stringify(op)}`);
        }
        const args = req.args === undefined ? {} : req.args;
        if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new BadRequest('args must be an object');
        const result = await OPS[op](args);
        return { id, ok: true, result: result === undefined ? null : result };
    } catch (e) {
        return { id, ok: false, error: errorText(e) };
    }
}

function send(obj) {
    let text;
    try {
        text = JSON.stringify(obj);
    } catch (e) {
        text = JSON.stringify({ id: obj.id, ok: false, error: 'unserialisable result: ' + errorText(e) });
    }
    protocolOut.write(text + '\n');
}

// A library bug must not take the oracle down; the request that triggered it
// has already been answered (or will be, via its rejected promise).
process.on('uncaughtException', (e) => process.stderr.write(`oracle: uncaught ${errorText(e)}\n`));
process.on('unhandledRejection', (e) => process.stderr.write(`oracle: unhandled rejection ${errorText(e)}\n`));
// The test harness may close our stdout early; that is not our problem.
protocolOut.on('error', () => process.exit(0));

let chain = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
    if (line.trim() === '') return;
    chain = chain.then(() => handle(line)).then(send);
});
rl.on('close', () => {
    chain.then(() => process.exit(0));
});

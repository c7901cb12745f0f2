#!/usr/bin/env node
'use strict';
/*
 * A DM3 client made of the reference npm libraries (1.7.1), talking to a
 * delivery service over HTTP exactly as the messenger does (docs/protocol.md §9,
 * §10). The Rust interop tests (tests/interop_relay.rs) drive it to check
 * that a dm3-bridge node works as the delivery service of a stock client.
 *
 * The libraries do the DM3 work: profiles (createProfile), the profile POST
 * (dm3-lib-delivery-api submitUserProfile), messages (createMessage),
 * envelopes (buildEnvelop for the npm format; seal-current.js for the
 * current one), the JSON-RPC body (createJsonRpcCallSubmitMessage),
 * signatures (sign/checkSignature), decryption (decryptEnvelop). HTTP calls
 * the library has no usable helper for (its delivery helpers need an ENS
 * provider) are made with Node's fetch, with the messenger's paths and bodies.
 *
 * Protocol, as interop/oracle.js: one JSON request per stdin line,
 * {"id":N,"op":"...","args":{...}}, one answer per stdout line,
 * {"id":N,"ok":true,"result":...} or {"id":N,"ok":false,"error":"..."}.
 * HTTP failures are results ({status, body}), not errors: the tests assert on
 * them. One-shot use: `node interop/ds-client.js OP < args.json`.
 *
 * Ops (keys are standard base64; KP = {publicKey, privateKey}):
 *   ping
 *   new_user      {deliveryServices}            -> {address, ensName, keys:{encryption:KP, signing:KP}, signedUserProfile}
 *   register      {url, ensName, signedUserProfile}            -> {status, token | body}
 *   login         {url, ensName, signingPrivateKey, replay?}   -> {status, challenge, token | body, replayStatus?}
 *   submit        {url, from:{ensName, signingPrivateKey}, to:{ensName, publicEncryptionKey},
 *                  dsPublicEncryptionKey, text, format: "current"|"npm", replyTo?: messageHash,
 *                  metadataSigningPrivateKey?, tamper?: "deliveryInformation"|"messageHash"|"message"}
 *                                               -> {status, body, envelope, message, messageHash}
 *   post_envelope {url, envelope, asObject?}    -> {status, body}   (a replay, or params[0] as an object)
 *   post_raw      {url, path, body}             -> {status, body}   (any text as a JSON POST body)
 *   rpc           {url, method, params}         -> {status, body}
 *   incoming      {url, ensName, token, encryptionKeyPair, dsPublicSigningKey, senderSigningKeys?: {name: pk}}
 *                                               -> {status, body | envelopes:[{format, ackHash, messageHash, from,
 *                                                   text, type, referenceMessageHash, attachments, deliveryInformation,
 *                                                   postmark, postmarkValid, messageSignatureValid}],
 *                                                   undecryptable:[{ackHash, from, error}]}
 *   ack           {url, ensName, token, acknowledgements}   -> {status, body}
 *
 * Live delivery (docs/protocol.md §9.3), with socket.io-client at the messenger's version,
 * connected as the messenger connects (websocket transport, auth = {account: {ensName}, token}).
 * Times are milliseconds since the epoch with sub-millisecond precision (`submit` returns its
 * `sentAt` and `answeredAt` the same way), so latencies are differences within this process.
 *   live_connect  {url, ensName, token, auth?: any (replaces the messenger's auth), timeoutMs?, localAddress?}
 *                                               -> {socket, outcome: "authorized"|"connect_error"|"timeout", error?}
 *   live_messages {socket, count, timeoutMs, encryptionKeyPair, dsPublicSigningKey, senderSigningKeys?}
 *                 waits for `count` messages in all (or the timeout)
 *                                               -> {messages:[{receivedAt, ...as in incoming}], undecryptable,
 *                                                   connected, disconnectReason, authorized}
 *   live_close    {socket}                       -> {closed}   (the messenger's logout: it closes its socket)
 *   live_flood    {url, auths: [auth], timeoutMs?, localAddress?}   opens one socket per auth at once, no retries
 *                                               -> {authorized, outcomes: {"<outcome>: <error>": n}} (all closed after)
 * `localAddress` is the source address of the socket's connection (e.g. 127.0.0.2: another client).
 */

// Keep stdout for answers; the libraries log (submitUserProfile prints its URL).
const answerOut = process.stdout;
for (const level of ['log', 'info', 'debug', 'warn', 'trace']) {
    console[level] = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
}

const readline = require('readline');
const { ethers } = require('ethers');
const crypto = require('@dm3-org/dm3-lib-crypto');
const profileLib = require('@dm3-org/dm3-lib-profile');
const messaging = require('@dm3-org/dm3-lib-messaging');
const deliveryApi = require('@dm3-org/dm3-lib-delivery-api');
const { stringify, sha256 } = require('@dm3-org/dm3-lib-shared');
const { sealCurrent } = require('./seal-current');
const { io: socketIo } = require('socket.io-client');
const { performance } = require('perf_hooks');

// Wall-clock milliseconds with the monotonic clock's precision.
const now = () => performance.timeOrigin + performance.now();

class BadRequest extends Error {}

function need(args, name) {
    if (args[name] === undefined || args[name] === null) throw new BadRequest(`missing argument "${name}"`);
    return args[name];
}

// An HTTP exchange as a result: status and body (JSON when it parses).
async function exchange(url, init) {
    let response;
    try {
        response = await fetch(url, init);
    } catch (error) {
        // A pooled keep-alive connection that the server closed (it refuses an oversized body
        // without reading it, then hangs up) fails the next request sent on it. Every request
        // this client makes is idempotent (submits are deduplicated by the node), so one retry
        // on a fresh connection is what a real client does too.
        if (!(error instanceof TypeError)) throw error;
        response = await fetch(url, init);
    }
    const text = await response.text();
    let body = text;
    try {
        body = JSON.parse(text);
    } catch {
        // Not JSON (e.g. the submit's plain "OK"): keep the text.
    }
    return { status: response.status, body };
}

const postJson = (url, body, headers = {}) =>
    exchange(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
    });

const bearer = (token) => ({ Authorization: `Bearer ${token}` });
const named = (ensName) => encodeURIComponent(profileLib.normalizeEnsName(ensName));

// Changes one base64 character of an encrypted payload's ciphertext.
function flipCiphertext(payloadText) {
    const payload = JSON.parse(payloadText);
    const i = 10;
    const c = payload.ciphertext[i] === 'A' ? 'B' : 'A';
    payload.ciphertext = payload.ciphertext.slice(0, i) + c + payload.ciphertext.slice(i + 1);
    return stringify(payload);
}

async function seal(message, format, senderSk, recipientPk, dsPk) {
    if (format === 'npm') {
        // npm 1.7.1 dist: metadata.encryptedMessageHash (docs/protocol.md P1).
        const { encryptedEnvelop } = await messaging.buildEnvelop(message, crypto.encryptAsymmetric, {
            to: { ensName: message.metadata.to, profile: { publicEncryptionKey: recipientPk } },
            from: { ensName: message.metadata.from },
            deliverServiceProfile: { publicEncryptionKey: dsPk, url: '' },
            keys: { signingKeyPair: { privateKey: senderSk } },
        });
        return encryptedEnvelop;
    }
    if (format !== 'current') throw new BadRequest('format must be "current" or "npm"');
    return sealCurrent(message, senderSk, recipientPk, dsPk);
}

// How the messenger submits (§9.1): no id, params[0] = JSON.stringify(envelope).
const submitEnvelope = (url, envelope, asObject) => {
    const call = messaging.createJsonRpcCallSubmitMessage(envelope);
    if (asObject) call.params = [envelope];
    return postJson(`${url}/rpc`, call);
};

// Postmark verification (§8): the postmark belongs to this ciphertext and the DS signed it.
function postmarkValid(envelope, postmark, dsPublicSigningKey) {
    if (postmark.messageHash !== ethers.utils.hashMessage(stringify(envelope.message))) return false;
    const signed = sha256(stringify({ incommingTimestamp: postmark.incommingTimestamp, messageHash: postmark.messageHash }));
    return crypto.checkSignature(dsPublicSigningKey, signed, postmark.signature);
}

// What the messenger does with each stored envelope, fetched or pushed: decrypt message and
// postmark (§8, §10.2), skipping one that does not open (a sender can seal garbage the node
// cannot see through: the current format signs the plaintext's hash, not the ciphertext), so
// one bad envelope never hides the others. `a` holds encryptionKeyPair, dsPublicSigningKey and
// senderSigningKeys?; `extra(i)` adds fields to the i-th result.
async function openAll(stored, a, extra = () => ({})) {
    const keyPair = need(a, 'encryptionKeyPair');
    const dsPk = need(a, 'dsPublicSigningKey');
    const senderKeys = a.senderSigningKeys ?? {};
    const opened = [];
    const undecryptable = [];
    for (const [i, envelope] of stored.entries()) {
        let plain;
        try {
            plain = await messaging.decryptEnvelop(envelope, keyPair);
        } catch (error) {
            const info = envelope.metadata.deliveryInformation;
            undecryptable.push({
                ...extra(i),
                ackHash: envelope.metadata.messageHash ?? envelope.metadata.encryptedMessageHash,
                from: typeof info === 'object' && info !== null ? info.from ?? null : null,
                error: String(error && error.message ? error.message : error).slice(0, 200),
            });
            continue;
        }
        const from = plain.message.metadata.from;
        const senderKey = senderKeys[from];
        opened.push({
            ...extra(i),
            format: envelope.metadata.messageHash !== undefined ? 'current' : 'npm',
            ackHash: envelope.metadata.messageHash ?? envelope.metadata.encryptedMessageHash,
            messageHash: sha256(stringify(plain.message)),
            from,
            text: plain.message.message,
            type: plain.message.metadata.type,
            referenceMessageHash: plain.message.metadata.referenceMessageHash ?? null,
            attachments: plain.message.attachments ?? [],
            deliveryInformation: envelope.metadata.deliveryInformation,
            postmark: plain.postmark,
            postmarkValid: await postmarkValid(envelope, plain.postmark, dsPk),
            messageSignatureValid:
                senderKey === undefined ? null : await messaging.checkMessageSignature(plain.message, senderKey, from),
        });
    }
    return { opened, undecryptable };
}

// Live sockets by id, each with what it received.
const liveSockets = new Map();
let nextSocket = 1;

// A socket as the messenger opens it (JwtInterceptor.initializeSocketIO): the DS url without
// `/ds`, websocket transport only, auth = {account: {ensName}, token}. `options` adds the
// test's (forceNew, no reconnection for floods). Resolves once the socket is authorized,
// refused, or the timeout passed.
function openSocket(url, auth, options, timeoutMs) {
    const socket = socketIo(url.replace('/ds', ''), { autoConnect: false, transports: ['websocket'], ...options });
    socket.auth = auth;
    const state = { socket, messages: [], authorized: false, disconnectReason: null, waiters: [] };
    const settled = new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ outcome: 'timeout' }), timeoutMs);
        socket.on('authorized', () => {
            state.authorized = true;
            clearTimeout(timer);
            resolve({ outcome: 'authorized' });
        });
        socket.on('connect_error', (error) => {
            clearTimeout(timer);
            resolve({ outcome: 'connect_error', error: String(error && error.message ? error.message : error) });
        });
    });
    socket.on('message', (envelope) => {
        state.messages.push({ receivedAt: now(), envelope });
        for (const wake of state.waiters.splice(0)) wake();
    });
    socket.on('disconnect', (reason) => {
        state.disconnectReason = reason;
        for (const wake of state.waiters.splice(0)) wake();
    });
    socket.connect();
    return { state, settled };
}

function liveSocket(a) {
    const state = liveSockets.get(need(a, 'socket'));
    if (state === undefined) throw new BadRequest(`no socket ${a.socket}`);
    return state;
}

const OPS = {
    ping: async () => 'pong',

    new_user: async (a) => {
        const deliveryServices = a.deliveryServices ?? ['ds.example.eth'];
        const wallet = ethers.Wallet.createRandom();
        const { keys, signedProfile } = await profileLib.createProfile(wallet.address, deliveryServices, null, {
            signer: (msg) => wallet.signMessage(msg),
        });
        return {
            address: wallet.address,
            ensName: `${wallet.address.toLowerCase()}.addr.dm3.eth`,
            keys: {
                encryption: { publicKey: keys.encryptionKeyPair.publicKey, privateKey: keys.encryptionKeyPair.privateKey },
                signing: { publicKey: keys.signingKeyPair.publicKey, privateKey: keys.signingKeyPair.privateKey },
            },
            signedUserProfile: signedProfile,
        };
    },

    register: async (a) => {
        const signedUserProfile = need(a, 'signedUserProfile');
        const account = { ensName: need(a, 'ensName'), profile: signedUserProfile.profile };
        try {
            const token = await deliveryApi.submitUserProfile(need(a, 'url'), account, signedUserProfile);
            return { status: 200, token };
        } catch (e) {
            if (!e.response) throw e;
            return { status: e.response.status, body: e.response.data };
        }
    },

    login: async (a) => {
        const url = `${need(a, 'url')}/auth/${named(need(a, 'ensName'))}`;
        const issued = await exchange(url, { method: 'GET' });
        if (issued.status !== 200) return issued;
        const challenge = issued.body;
        // The client signs the challenge string verbatim (§9.2).
        const signature = await crypto.sign(need(a, 'signingPrivateKey'), challenge);
        const redeemed = await postJson(url, { signature, challenge });
        const out = { status: redeemed.status, challenge };
        if (redeemed.status === 200) out.token = redeemed.body;
        else out.body = redeemed.body;
        if (a.replay) out.replayStatus = (await postJson(url, { signature, challenge })).status;
        return out;
    },

    submit: async (a) => {
        const from = need(a, 'from');
        const to = need(a, 'to');
        // A reply (createReplyMessage) when `replyTo` names the answered message's hash.
        const created =
            a.replyTo === undefined || a.replyTo === null
                ? await messaging.createMessage(to.ensName, from.ensName, need(a, 'text'), from.signingPrivateKey)
                : await messaging.createReplyMessage(to.ensName, from.ensName, need(a, 'text'), from.signingPrivateKey, a.replyTo);
        const message = JSON.parse(JSON.stringify(created));
        const metadataKey = a.metadataSigningPrivateKey ?? from.signingPrivateKey;
        const envelope = await seal(message, a.format ?? 'current', metadataKey, to.publicEncryptionKey, need(a, 'dsPublicEncryptionKey'));
        switch (a.tamper) {
            case undefined:
            case null:
                break;
            case 'deliveryInformation':
                envelope.metadata.deliveryInformation = flipCiphertext(envelope.metadata.deliveryInformation);
                break;
            case 'messageHash':
                envelope.metadata.messageHash = sha256('another message');
                break;
            case 'message':
                envelope.message = flipCiphertext(envelope.message);
                break;
            default:
                throw new BadRequest(`unknown tamper ${JSON.stringify(a.tamper)}`);
        }
        const sentAt = now();
        const answer = await submitEnvelope(need(a, 'url'), envelope, false);
        const answeredAt = now();
        return { ...answer, envelope, message, messageHash: sha256(stringify(message)), sentAt, answeredAt };
    },

    post_envelope: async (a) => submitEnvelope(need(a, 'url'), need(a, 'envelope'), Boolean(a.asObject)),

    post_raw: async (a) => postJson(`${need(a, 'url')}${need(a, 'path')}`, String(need(a, 'body'))),

    rpc: async (a) => postJson(`${need(a, 'url')}/rpc`, { jsonrpc: '2.0', method: need(a, 'method'), params: a.params ?? [] }),

    incoming: async (a) => {
        const url = `${need(a, 'url')}/delivery/messages/incoming/${named(need(a, 'ensName'))}`;
        const answer = await exchange(url, { method: 'GET', headers: bearer(need(a, 'token')) });
        if (answer.status !== 200) return answer;
        const { opened: envelopes, undecryptable } = await openAll(answer.body, a);
        return { status: answer.status, envelopes, undecryptable };
    },

    live_connect: async (a) => {
        const auth = a.auth !== undefined ? a.auth : { account: { ensName: need(a, 'ensName') }, token: need(a, 'token') };
        const options = { forceNew: true, ...(a.localAddress ? { localAddress: a.localAddress } : {}) };
        const { state, settled } = openSocket(need(a, 'url'), auth, options, a.timeoutMs ?? 10000);
        const result = await settled;
        const id = nextSocket++;
        liveSockets.set(id, state);
        if (result.outcome !== 'authorized') state.socket.close();
        return { socket: id, ...result };
    },

    live_messages: async (a) => {
        const state = liveSocket(a);
        const count = need(a, 'count');
        const deadline = now() + need(a, 'timeoutMs');
        while (state.messages.length < count && now() < deadline) {
            await new Promise((resolve) => {
                state.waiters.push(resolve);
                setTimeout(resolve, Math.max(0, deadline - now()));
            });
        }
        const received = state.messages.slice();
        const { opened, undecryptable } = await openAll(
            received.map((m) => m.envelope),
            a,
            (i) => ({ receivedAt: received[i].receivedAt }),
        );
        return {
            messages: opened,
            undecryptable,
            connected: state.socket.connected,
            disconnectReason: state.disconnectReason,
            authorized: state.authorized,
        };
    },

    live_close: async (a) => {
        const state = liveSocket(a);
        state.socket.close();
        return { closed: true };
    },

    live_flood: async (a) => {
        const options = { forceNew: true, reconnection: false, ...(a.localAddress ? { localAddress: a.localAddress } : {}) };
        const opened = need(a, 'auths').map((auth) => openSocket(need(a, 'url'), auth, options, a.timeoutMs ?? 10000));
        const results = await Promise.all(opened.map((o) => o.settled));
        const outcomes = {};
        for (const r of results) {
            const key = r.error === undefined ? r.outcome : `${r.outcome}: ${r.error}`;
            outcomes[key] = (outcomes[key] ?? 0) + 1;
        }
        for (const o of opened) o.state.socket.close();
        return { authorized: results.filter((r) => r.outcome === 'authorized').length, outcomes };
    },

    ack: async (a) =>
        postJson(
            `${need(a, 'url')}/delivery/messages/${named(need(a, 'ensName'))}/syncAcknowledgements`,
            { acknowledgements: need(a, 'acknowledgements') },
            bearer(need(a, 'token')),
        ),
};

function errorText(e) {
    if (e instanceof Error) return e.stack || e.message || e.name;
    return typeof e === 'string' ? e : JSON.stringify(e);
}

async function run(op, args) {
    if (typeof op !== 'string' || !Object.prototype.hasOwnProperty.call(OPS, op)) {
        throw new BadRequest(`unknown op ${JSON.stringify(op)}`);
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new BadRequest('args must be an object');
    const result = await OPS[op](args);
    return result === undefined ? null : result;
}

async function handle(line) {
    let id = null;
    try {
        const request = JSON.parse(line);
        id = request.id ?? null;
        return { id, ok: true, result: await run(request.op, request.args ?? {}) };
    } catch (e) {
        return { id, ok: false, error: errorText(e) };
    }
}

process.on('unhandledRejection', (e) => process.stderr.write(`ds-client: unhandled rejection ${errorText(e)}\n`));
answerOut.on('error', () => process.exit(0));

if (process.argv.length > 2) {
    // One-shot: node ds-client.js OP < args.json
    let input = '';
    process.stdin.on('data', (chunk) => (input += chunk));
    process.stdin.on('end', async () => {
        try {
            const result = await run(process.argv[2], input.trim() === '' ? {} : JSON.parse(input));
            answerOut.write(JSON.stringify(result) + '\n');
        } catch (e) {
            process.stderr.write(errorText(e) + '\n');
            process.exit(1);
        }
    });
} else {
    let chain = Promise.resolve();
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', (line) => {
        if (line.trim() === '') return;
        chain = chain.then(() => handle(line)).then((answer) => answerOut.write(JSON.stringify(answer) + '\n'));
    });
    rl.on('close', () => chain.then(() => process.exit(0)));
}

'use strict';
/*
 * The envelope format of git tag 1.7.1 / develop ("current"), built from the
 * npm 1.7.1 library primitives. The npm dist's own buildEnvelop still writes
 * the older `encryptedMessageHash` format (docs/protocol.md P1), so the current
 * format has to be assembled here, step for step as the tagged source does
 * (docs/protocol.md §7.2): encrypt the message to the recipient, encrypt
 * {to, from} to the delivery service, hash the plaintext message, sign the
 * canonical metadata. Shared by oracle.js and bench.js so both measure and
 * answer with the same code.
 */
const crypto = require('@dm3-org/dm3-lib-crypto');
const { stringify, sha256 } = require('@dm3-org/dm3-lib-shared');

const ENCRYPTION_SCHEME = 'x25519-chacha20-poly1305';

// `encryptAsymmetric` can be replaced, as buildEnvelop allows, to make the
// output reproducible (see deterministicEncryptor).
async function sealCurrent(
    message,
    senderSigningPrivateKey,
    recipientPublicEncryptionKey,
    dsPublicEncryptionKey,
    encryptAsymmetric = crypto.encryptAsymmetric,
) {
    const encryptedMessage = stringify(await encryptAsymmetric(recipientPublicEncryptionKey, stringify(message)));
    const deliveryInformation = { to: message.metadata.to, from: message.metadata.from };
    // Key insertion order follows the source; only the JSON-RPC body (a plain
    // JSON.stringify) can see it, the signature covers the sorted form.
    const metadata = {
        encryptionScheme: ENCRYPTION_SCHEME,
        deliveryInformation: stringify(await encryptAsymmetric(dsPublicEncryptionKey, stringify(deliveryInformation))),
        messageHash: sha256(stringify(message)),
        version: 'v1',
    };
    const signature = await crypto.sign(senderSigningPrivateKey, stringify(metadata));
    return { message: encryptedMessage, metadata: { ...metadata, signature } };
}

/*
 * A drop-in for encryptAsymmetric with caller-chosen randomness: the i-th
 * call uses steps[i] = {ephemeralSeed (b64, 32 bytes), nonce (0x + 24 hex)}.
 * It runs the library's own steps (crypto_kx seed key pair, client session
 * key, encrypt with a given nonce), exactly like vectors/gen-vectors.js, so
 * a Rust encoder given the same seeds must produce identical bytes.
 */
function deterministicEncryptor(steps) {
    let i = 0;
    return async (receiverPublicKey, payload, padding) => {
        if (i >= steps.length) throw new Error(`deterministic: only ${steps.length} encryption step(s) given`);
        const { ephemeralSeed, nonce } = steps[i++];
        if (typeof ephemeralSeed !== 'string' || typeof nonce !== 'string') {
            throw new Error('deterministic steps must be {ephemeralSeed, nonce} strings');
        }
        const ephemeral = await crypto.createKeyPair(ephemeralSeed);
        const session = await crypto.createSenderSessionKey(ephemeral, receiverPublicKey);
        const enc = await crypto.encrypt(session.sharedTx, payload, nonce, padding);
        return { ...enc, ephemPublicKey: ephemeral.publicKey };
    };
}

module.exports = { sealCurrent, deterministicEncryptor, ENCRYPTION_SCHEME };

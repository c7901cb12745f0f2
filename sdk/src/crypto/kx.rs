//! libsodium `crypto_kx`: X25519 key pairs and the client/server session keys.
//!
//! A seed becomes a key pair as `crypto_kx_seed_keypair` does it:
//! `sk = BLAKE2b-256(seed)` (unkeyed), `pk = X25519(sk, 9)`. The secret is kept
//! as stored by the reference, unclamped; X25519 clamps when it multiplies.
//! Session keys are `BLAKE2b-512(q ‖ client_pk ‖ server_pk)` split in halves;
//! the client reads with the first half and the server with the second
//! (PROTOCOL.md P4). An all-zero `q` is rejected, as libsodium does (P22).

use blake2::{Blake2b256, Blake2b512, Digest as _};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::CryptoError;
use crate::encoding::{b64_decode_array, b64_encode};

/// An X25519 key pair in the form the reference stores it.
#[derive(Clone)]
pub struct KxKeyPair {
    public: [u8; 32],
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for KxKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KxKeyPair")
            .field("public", &b64_encode(&self.public))
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Session keys: `rx` decrypts what the peer sent, `tx` encrypts for the peer.
pub struct SessionKeys {
    pub rx: Zeroizing<[u8; 32]>,
    pub tx: Zeroizing<[u8; 32]>,
}

impl KxKeyPair {
    /// `crypto_kx_seed_keypair`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let secret: [u8; 32] = Blake2b256::digest(seed).into();
        Self::from_secret(secret)
    }

    /// A key pair from its raw (unclamped) secret scalar.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = PublicKey::from(&StaticSecret::from(secret)).to_bytes();
        Self { public, secret: Zeroizing::new(secret) }
    }

    /// A fresh random key pair (`crypto_kx_keypair`).
    pub fn generate() -> Self {
        Self::from_secret(super::random_bytes())
    }

    /// Parses a base64 secret key, as found in `ENCRYPTION_PRIVATE_KEY`.
    pub fn from_secret_b64(secret: &str) -> Result<Self, CryptoError> {
        Ok(Self::from_secret(b64_decode_array(secret)?))
    }

    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    pub fn public_b64(&self) -> String {
        b64_encode(&self.public)
    }

    pub fn secret_b64(&self) -> Zeroizing<String> {
        Zeroizing::new(b64_encode(self.secret.as_ref()))
    }

    /// `crypto_kx_client_session_keys`: this pair is the client, `server` the peer.
    pub fn client_session_keys(&self, server: &[u8; 32]) -> Result<SessionKeys, CryptoError> {
        let shared = self.shared_secret(server)?;
        let (rx, tx) = split(&session_hash(&shared, &self.public, server));
        Ok(SessionKeys { rx, tx })
    }

    /// `crypto_kx_server_session_keys`: this pair is the server, `client` the peer.
    pub fn server_session_keys(&self, client: &[u8; 32]) -> Result<SessionKeys, CryptoError> {
        let shared = self.shared_secret(client)?;
        let (tx, rx) = split(&session_hash(&shared, client, &self.public));
        Ok(SessionKeys { rx, tx })
    }

    fn shared_secret(&self, peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        let shared = StaticSecret::from(*self.secret).diffie_hellman(&PublicKey::from(*peer));
        if !shared.was_contributory() {
            return Err(CryptoError::WeakSharedSecret);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

fn session_hash(shared: &[u8; 32], client: &[u8; 32], server: &[u8; 32]) -> Zeroizing<[u8; 64]> {
    let mut hasher = Blake2b512::new();
    hasher.update(shared);
    hasher.update(client);
    hasher.update(server);
    Zeroizing::new(hasher.finalize().into())
}

fn split(hash: &[u8; 64]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut first = Zeroizing::new([0u8; 32]);
    let mut second = Zeroizing::new([0u8; 32]);
    first.copy_from_slice(&hash[..32]);
    second.copy_from_slice(&hash[32..]);
    (first, second)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn all_zero_shared_secret_is_rejected() {
        let pair = KxKeyPair::generate();
        assert_eq!(pair.client_session_keys(&[0u8; 32]).err(), Some(CryptoError::WeakSharedSecret));
        assert_eq!(pair.server_session_keys(&[0u8; 32]).err(), Some(CryptoError::WeakSharedSecret));
    }

    #[test]
    fn client_tx_is_server_rx() {
        let client = KxKeyPair::generate();
        let server = KxKeyPair::generate();
        let c = client.client_session_keys(server.public()).unwrap();
        let s = server.server_session_keys(client.public()).unwrap();
        assert_eq!(*c.tx, *s.rx);
        assert_eq!(*c.rx, *s.tx);
    }
}

//! libsodium `crypto_kx`: X25519 key pairs and the client/server session keys.
//!
//! A seed becomes a key pair as `crypto_kx_seed_keypair` does it:
//! `sk = BLAKE2b-256(seed)` (unkeyed), `pk = X25519(sk, 9)`. The secret is kept
//! as stored by the reference, unclamped; X25519 clamps when it multiplies.
//! Session keys are `BLAKE2b-512(q ‖ client_pk ‖ server_pk)` split in halves;
//! the client reads with the first half and the server with the second
//! (docs/protocol.md P4). An all-zero `q` is rejected, as libsodium does (P22).
//!
//! `q = X25519(sk, peer)` is computed on the Edwards form of the curve when the peer's
//! u-coordinate is on the curve: curve25519-dalek multiplies Edwards points with its AVX2
//! backend, which the Montgomery ladder lacks, and a relay does two exchanges per envelope.
//! The result is the same number (the u-coordinate of `[clamp(sk)]P` does not depend on which
//! of the two points with that u-coordinate is `P`); a u-coordinate on the twist, which has no
//! Edwards point, takes the ladder. Both paths are constant time in the secret; which path is
//! taken depends only on the public key. A property test checks the result against
//! x25519-dalek.

use blake2::{Blake2b256, Blake2b512, Digest as _};
use curve25519_dalek::montgomery::MontgomeryPoint;
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
        let shared = Zeroizing::new(x25519(&self.secret, peer));
        // A low-order peer key gives all zeros; libsodium refuses it (P22).
        if shared.iter().fold(0u8, |any, byte| any | byte) == 0 {
            return Err(CryptoError::WeakSharedSecret);
        }
        Ok(shared)
    }
}

/// RFC 7748 X25519 (see the module documentation for the Edwards path).
fn x25519(secret: &[u8; 32], peer: &[u8; 32]) -> [u8; 32] {
    let u = MontgomeryPoint(*peer);
    match u.to_edwards(0) {
        Some(point) => point.mul_clamped(*secret).to_montgomery().to_bytes(),
        None => u.mul_clamped(*secret).to_bytes(),
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

    fn reference_x25519(secret: &[u8; 32], peer: &[u8; 32]) -> [u8; 32] {
        StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(*peer)).to_bytes()
    }

    #[test]
    fn x25519_matches_the_ladder_on_special_points() {
        let secret = [0x5a; 32];
        let p = "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        let specials = [
            // Low order (libsodium's blocklist), 0 and 1, p - 1 (= -1, twist), p, p + 1, 2^255 - 1.
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            p,
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            // The base point, with and without the top bit (which X25519 ignores).
            "0900000000000000000000000000000000000000000000000000000000000000",
            "0900000000000000000000000000000000000000000000000000000000000080",
        ];
        for hex in specials {
            let peer: [u8; 32] = crate::encoding::hex_decode_array(&format!("0x{hex}")).unwrap();
            assert_eq!(x25519(&secret, &peer), reference_x25519(&secret, &peer), "{hex}");
        }
    }

    proptest::proptest! {
        /// Any 32 bytes as the peer key: about half are on the twist and take the ladder.
        #[test]
        fn x25519_matches_the_ladder(secret in proptest::array::uniform32(0u8..), peer in proptest::array::uniform32(0u8..)) {
            proptest::prop_assert_eq!(x25519(&secret, &peer), reference_x25519(&secret, &peer));
        }

        /// Real public keys: all on the curve, so all take the Edwards path.
        #[test]
        fn x25519_matches_the_ladder_for_public_keys(secret in proptest::array::uniform32(0u8..), other in proptest::array::uniform32(0u8..)) {
            let peer = KxKeyPair::from_secret(other).public;
            proptest::prop_assert_eq!(x25519(&secret, &peer), reference_x25519(&secret, &peer));
        }
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

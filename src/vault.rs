//! The vault: the operator's master key and the sealing of secrets at rest under it.
//!
//! Every secret the node keeps on disk or in the database (its own keys now, the custodial
//! keys of virtual users later) is sealed with ChaCha20-Poly1305 under one 32-byte master key.
//! The operator supplies that key as a file with mode 0600 or in `DM3_BRIDGE_MASTER_KEY`, so a
//! copy of the database or the data directory alone reveals nothing.
//!
//! Pieces:
//! - [`secret`]: the in-memory secret type that prints `[redacted]` and zeroizes on drop;
//! - [`master_key`]: where the master key comes from and how its file is written;
//! - [`seal`]: the sealed-blob format (version byte, key version, random nonce, AAD label);
//! - [`derive`]: secrets derived from the master key, made again instead of stored;
//! - [`wallet`]: a secp256k1 wallet sealed under a label, for the gateway signer and the
//!   virtual identities' key versions alike.

pub mod derive;
pub mod master_key;
pub mod seal;
pub mod secret;
pub mod wallet;

pub use master_key::{MasterKey, MasterKeyError, MasterKeySource};
pub use seal::SealError;
pub use secret::SecretBytes;
pub use wallet::{OpenWalletError, open_wallet, seal_wallet};

//! The two shared secrets of an application service, as types that cannot leak into a log.
//!
//! - [`AsToken`]: the bridge presents it to the homeserver on every client-server call;
//! - [`HsToken`]: the homeserver presents it to the bridge on every application-service call.
//!
//! Anyone holding the as_token can act as every ghost, and anyone holding the hs_token can
//! inject events into the bridge, so neither implements `Display`, their `Debug` prints a
//! placeholder, and their memory is zeroed on drop (docs/contributing.md: secrets are their own types).

use std::fmt;

use zeroize::Zeroizing;

/// Bytes of randomness in a generated token (hex-encoded, so the token is twice as long).
const TOKEN_BYTES: usize = 32;

/// A token that the operating system's random source could not produce.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

macro_rules! token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Wraps a token read from the configuration or a registration file.
            pub fn new(token: impl Into<String>) -> Self {
                Self(Zeroizing::new(token.into()))
            }

            /// A fresh token: 32 random bytes from the operating system, hex-encoded.
            pub fn generate() -> Result<Self, RandomError> {
                let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
                getrandom::fill(bytes.as_mut()).map_err(|e| RandomError(e.to_string()))?;
                let mut hex = Zeroizing::new(String::with_capacity(TOKEN_BYTES * 2));
                for byte in bytes.iter() {
                    hex.push(char::from(HEX[usize::from(byte >> 4)]));
                    hex.push(char::from(HEX[usize::from(byte & 0xf)]));
                }
                Ok(Self(hex))
            }

            /// The token itself, to put on the wire or into a file. Never log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

const HEX: &[u8; 16] = b"0123456789abcdef";

token!(
    /// The application service's token towards the homeserver (`as_token`).
    AsToken
);
token!(
    /// The homeserver's token towards the application service (`hs_token`).
    HsToken
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn generated_tokens_are_fresh_hex_and_never_printed() {
        let a = AsToken::generate().unwrap();
        let b = AsToken::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        let shown = format!("{a:?} {:?}", HsToken::new("secret"));
        assert!(!shown.contains(a.expose()) && !shown.contains("secret"), "{shown}");
    }
}

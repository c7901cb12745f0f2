//! The gateway's signed answer: `abi.encode(bytes result, uint64 validUntil, bytes sig)`.
//!
//! The Ccip-Resolver gateway (`signAndEncodeResponse.ts`, §12.2) signs
//! `h = keccak256(0x1900 ‖ resolver ‖ uint64 validUntil ‖ keccak256(calldata) ‖ keccak256(result))`
//! with EIP-191 `personal_sign` over the 32 bytes of `h`, and answers
//! `{"data": "0x…"}`. `calldata` is what the gateway received, which is the
//! `OffchainLookup`'s `callData` and, on chain, its `extraData`.
//!
//! [`verify_gateway_response`] is the client's side, and it checks what the
//! on-chain `SignatureCcipVerifier` checks: the signer recovered from the
//! EIP-191 hash is an allowed signer, and `validUntil >= now`. Like OpenZeppelin's
//! `ECDSA.recover` it takes only 65-byte signatures with `v` = 27/28 and low `s`.
//!
//! Nothing here reads a clock: callers pass `now` in Unix seconds. The reference
//! sets `validUntil = floor(now + 30000)` seconds (about 8.3 hours), see
//! [`DEFAULT_TTL_SECS`].

use alloy_primitives::{Address, B256, Bytes, Signature};
use alloy_sol_types::{SolType as _, sol_data};
use serde::Deserialize;

use crate::crypto::eth::Wallet;
use crate::encoding::{hex_decode, hex_encode};
use crate::hash::{eip191_hash, keccak256};

/// The reference gateway's answer lifetime, in seconds (`ttl = 30000` in
/// `signAndEncodeResponse`; it is added to `Date.now() / 1000`).
pub const DEFAULT_TTL_SECS: u64 = 30_000;

/// The reference's answer tuple, `(bytes result, uint64 validUntil, bytes sig)`.
type ResponseAbi = (sol_data::Bytes, sol_data::Uint<64>, sol_data::Bytes);

/// Why a gateway response is not a valid, signed answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayResponseError {
    #[error("the gateway body is not JSON of the form {{\"data\": \"0x…\"}}")]
    Body,
    #[error("the gateway response is not abi.encode(bytes, uint64, bytes)")]
    Malformed,
    #[error("the gateway signature is not 65 bytes with v = 27/28 and low s")]
    MalformedSignature,
    #[error("no signer can be recovered from the gateway signature")]
    BadSignature,
    #[error("the answer is signed by {signer}, which is not an allowed gateway signer")]
    UnknownSigner { signer: Address },
    #[error("the answer expired at {valid_until} (now {now})")]
    Expired { valid_until: u64, now: u64 },
}

/// A gateway answer: the handler's `result`, its expiry and the signature over both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponse {
    pub result: Vec<u8>,
    pub valid_until: u64,
    pub signature: Vec<u8>,
}

/// A response whose signature and expiry passed [`verify_gateway_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResult {
    pub result: Vec<u8>,
    pub signer: Address,
    pub valid_until: u64,
}

#[derive(Deserialize)]
struct Body {
    data: String,
}

impl GatewayResponse {
    /// Signs `result` for `resolver` as the reference gateway does.
    pub fn sign(
        wallet: &Wallet,
        resolver: &Address,
        calldata: &[u8],
        result: Vec<u8>,
        valid_until: u64,
    ) -> Self {
        let hash = gateway_signature_hash(resolver, valid_until, calldata, &result);
        let signature = wallet.personal_sign(&hash).as_bytes().to_vec();
        Self { result, valid_until, signature }
    }

    /// `abi.encode(bytes result, uint64 validUntil, bytes sig)`.
    pub fn encode(&self) -> Vec<u8> {
        ResponseAbi::abi_encode_params(&(
            Bytes::copy_from_slice(&self.result),
            self.valid_until,
            Bytes::copy_from_slice(&self.signature),
        ))
    }

    /// The inverse of [`encode`](Self::encode). Padding is not checked, which is
    /// harmless: the signature covers `result` and `validUntil`, not their encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, GatewayResponseError> {
        let (result, valid_until, signature) =
            ResponseAbi::abi_decode_params(bytes).map_err(|_| GatewayResponseError::Malformed)?;
        Ok(Self { result: result.to_vec(), valid_until, signature: signature.to_vec() })
    }

    /// The gateway's HTTP body: `{"data":"0x…"}`.
    pub fn to_json_body(&self) -> String {
        // Hex needs no JSON escaping, so the body can be written directly.
        format!("{{\"data\":\"{}\"}}", hex_encode(&self.encode()))
    }

    /// Parses the gateway's HTTP body.
    pub fn from_json_body(body: &str) -> Result<Self, GatewayResponseError> {
        let body: Body = serde_json::from_str(body).map_err(|_| GatewayResponseError::Body)?;
        Self::decode(&hex_decode(&body.data).map_err(|_| GatewayResponseError::Body)?)
    }

    /// Checks the signature and expiry as `SignatureCcipVerifier.resolveWithProof` does.
    pub fn verify(
        &self,
        resolver: &Address,
        calldata: &[u8],
        allowed_signers: &[Address],
        now: u64,
    ) -> Result<Address, GatewayResponseError> {
        let signature = strict_signature(&self.signature)?;
        let hash = gateway_signature_hash(resolver, self.valid_until, calldata, &self.result);
        let signer = signature
            .recover_address_from_prehash(&B256::from(eip191_hash(&hash)))
            .map_err(|_| GatewayResponseError::BadSignature)?;
        if !allowed_signers.contains(&signer) {
            return Err(GatewayResponseError::UnknownSigner { signer });
        }
        if self.valid_until < now {
            return Err(GatewayResponseError::Expired { valid_until: self.valid_until, now });
        }
        Ok(signer)
    }
}

/// `keccak256(0x1900 ‖ resolver ‖ uint64 validUntil ‖ keccak256(calldata) ‖ keccak256(result))`,
/// `SignatureVerifier.makeSignatureHash`.
pub fn gateway_signature_hash(
    resolver: &Address,
    valid_until: u64,
    calldata: &[u8],
    result: &[u8],
) -> [u8; 32] {
    let mut packed = Vec::with_capacity(2 + 20 + 8 + 32 + 32);
    packed.extend_from_slice(&[0x19, 0x00]);
    packed.extend_from_slice(resolver.as_slice());
    packed.extend_from_slice(&valid_until.to_be_bytes());
    packed.extend_from_slice(&keccak256(calldata));
    packed.extend_from_slice(&keccak256(result));
    keccak256(&packed)
}

/// `abi.encode(bytes result, uint64 validUntil, bytes sig)`.
pub fn encode_gateway_response(result: &[u8], valid_until: u64, signature: &[u8]) -> Vec<u8> {
    GatewayResponse { result: result.to_vec(), valid_until, signature: signature.to_vec() }.encode()
}

/// Decodes an ABI-encoded gateway response and verifies it for `calldata` sent to `resolver`.
pub fn verify_gateway_response(
    resolver: &Address,
    calldata: &[u8],
    response: &[u8],
    expected_signers: &[Address],
    now: u64,
) -> Result<VerifiedResult, GatewayResponseError> {
    let response = GatewayResponse::decode(response)?;
    let signer = response.verify(resolver, calldata, expected_signers, now)?;
    Ok(VerifiedResult { result: response.result, signer, valid_until: response.valid_until })
}

/// OpenZeppelin `ECDSA.tryRecover`'s rules: 65 bytes, `v` 27 or 28, `s` in the lower half.
fn strict_signature(bytes: &[u8]) -> Result<Signature, GatewayResponseError> {
    let array: &[u8; 65] = bytes.try_into().map_err(|_| GatewayResponseError::MalformedSignature)?;
    if !matches!(array[64], 27 | 28) {
        return Err(GatewayResponseError::MalformedSignature);
    }
    let parsed = Signature::from_raw_array(array).map_err(|_| GatewayResponseError::MalformedSignature)?;
    if parsed.normalize_s().is_some() {
        return Err(GatewayResponseError::MalformedSignature);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn signed() -> (Wallet, Address, GatewayResponse) {
        let wallet = Wallet::generate();
        let resolver = Address::repeat_byte(0xde);
        let response = GatewayResponse::sign(&wallet, &resolver, b"calldata", b"result".to_vec(), NOW + 10);
        (wallet, resolver, response)
    }

    #[test]
    fn signed_response_verifies_and_round_trips() {
        let (wallet, resolver, response) = signed();
        let again = GatewayResponse::from_json_body(&response.to_json_body()).unwrap();
        assert_eq!(again, response);
        let verified =
            verify_gateway_response(&resolver, b"calldata", &response.encode(), &[wallet.address()], NOW)
                .unwrap();
        assert_eq!(
            verified,
            VerifiedResult { result: b"result".to_vec(), signer: wallet.address(), valid_until: NOW + 10 }
        );
        assert!(response.verify(&resolver, b"calldata", &[wallet.address()], NOW + 10).is_ok());
    }

    #[test]
    fn tampering_expiry_and_foreign_signers_are_refused() {
        let (wallet, resolver, response) = signed();
        let allowed = [wallet.address()];
        assert_eq!(
            response.verify(&resolver, b"calldata", &allowed, NOW + 11),
            Err(GatewayResponseError::Expired { valid_until: NOW + 10, now: NOW + 11 })
        );
        let mut tampered = response.clone();
        tampered.result = b"other".to_vec();
        assert!(matches!(
            tampered.verify(&resolver, b"calldata", &allowed, NOW),
            Err(GatewayResponseError::UnknownSigner { .. })
        ));
        assert!(matches!(
            response.verify(&resolver, b"other calldata", &allowed, NOW),
            Err(GatewayResponseError::UnknownSigner { .. })
        ));
        assert!(matches!(
            response.verify(&Address::ZERO, b"calldata", &allowed, NOW),
            Err(GatewayResponseError::UnknownSigner { .. })
        ));
    }

    #[test]
    fn malleable_and_malformed_signatures_are_refused() {
        let (wallet, resolver, response) = signed();
        let allowed = [wallet.address()];
        let mut short = response.clone();
        short.signature.truncate(64);
        assert_eq!(
            short.verify(&resolver, b"calldata", &allowed, NOW),
            Err(GatewayResponseError::MalformedSignature)
        );
        let mut v_zero = response.clone();
        v_zero.signature[64] -= 27;
        assert_eq!(
            v_zero.verify(&resolver, b"calldata", &allowed, NOW),
            Err(GatewayResponseError::MalformedSignature)
        );
        // The same signature with s' = n - s and the other parity recovers the same key.
        let parsed = Signature::from_raw_array(response.signature.as_slice().try_into().unwrap()).unwrap();
        let order = alloy_primitives::U256::from_be_bytes(alloy_primitives::hex!(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        ));
        let high = Signature::new(parsed.r(), order - parsed.s(), !parsed.v());
        let mut malleated = response.clone();
        malleated.signature = high.as_bytes().to_vec();
        assert_eq!(
            malleated.verify(&resolver, b"calldata", &allowed, NOW),
            Err(GatewayResponseError::MalformedSignature)
        );
        assert_eq!(GatewayResponse::decode(&[0; 10]), Err(GatewayResponseError::Malformed));
        assert_eq!(GatewayResponse::from_json_body("{\"data\":\"0xzz\"}"), Err(GatewayResponseError::Body));
        assert_eq!(GatewayResponse::from_json_body("[]"), Err(GatewayResponseError::Body));
    }
}

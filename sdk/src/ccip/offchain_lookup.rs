//! EIP-3668's `OffchainLookup` revert, as a client meets it.
//!
//! `resolve(name, data)` on DM3's `ERC3668Resolver` reverts with
//! `OffchainLookup(sender, urls, callData, callbackFunction, extraData)` (§12.1).
//! The client fetches an answer for `callData` from one of `urls` and then calls
//! `callbackFunction(response, extraData)` on `sender`. EIP-3668 requires the
//! client to refuse a lookup whose `sender` is not the contract it called, since
//! a nested call could otherwise borrow another contract's gateway; ethers v5
//! does so ("CCIP Read sender did not match"), and so does
//! [`OffchainLookup::decode_from`].

use alloy_primitives::{Address, Bytes, FixedBytes};
use alloy_sol_types::{SolError as _, SolValue as _};

use super::abi;

/// Why revert data is not a usable `OffchainLookup`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffchainLookupError {
    #[error("the revert data is not an OffchainLookup error")]
    NotOffchainLookup,
    #[error("the OffchainLookup revert data is malformed")]
    Malformed,
    #[error("the OffchainLookup names sender {actual}, but the call went to {expected}")]
    SenderMismatch { expected: Address, actual: Address },
    #[error("the OffchainLookup lists no gateway URL")]
    NoUrls,
}

/// A decoded `OffchainLookup` revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffchainLookup {
    pub sender: Address,
    pub urls: Vec<String>,
    pub call_data: Vec<u8>,
    pub callback_function: [u8; 4],
    pub extra_data: Vec<u8>,
}

impl OffchainLookup {
    /// `bytes4(keccak256("OffchainLookup(address,string[],bytes,bytes4,bytes)"))`.
    pub const SELECTOR: [u8; 4] = abi::OffchainLookup::SELECTOR;

    /// Decodes revert data. Strings that are not UTF-8 are refused rather than
    /// replaced, so a URL is never silently altered.
    pub fn decode(revert_data: &[u8]) -> Result<Self, OffchainLookupError> {
        if !revert_data.starts_with(&Self::SELECTOR) {
            return Err(OffchainLookupError::NotOffchainLookup);
        }
        let error = abi::OffchainLookup::abi_decode_validate(revert_data)
            .map_err(|_| OffchainLookupError::Malformed)?;
        Ok(Self {
            sender: error.sender,
            urls: error.urls,
            call_data: error.callData.to_vec(),
            callback_function: error.callbackFunction.0,
            extra_data: error.extraData.to_vec(),
        })
    }

    /// Decodes revert data from a call to `contract`, with the checks a client owes
    /// EIP-3668: the sender is that contract, and there is a gateway to ask.
    pub fn decode_from(contract: &Address, revert_data: &[u8]) -> Result<Self, OffchainLookupError> {
        let lookup = Self::decode(revert_data)?;
        if lookup.sender != *contract {
            return Err(OffchainLookupError::SenderMismatch { expected: *contract, actual: lookup.sender });
        }
        if lookup.urls.is_empty() {
            return Err(OffchainLookupError::NoUrls);
        }
        Ok(lookup)
    }

    /// The revert data, as the contract writes it.
    pub fn encode(&self) -> Vec<u8> {
        abi::OffchainLookup {
            sender: self.sender,
            urls: self.urls.clone(),
            callData: Bytes::copy_from_slice(&self.call_data),
            callbackFunction: FixedBytes(self.callback_function),
            extraData: Bytes::copy_from_slice(&self.extra_data),
        }
        .abi_encode()
    }

    /// The follow-up call: `callbackFunction(bytes response, bytes extraData)`.
    pub fn callback_calldata(&self, response: &[u8]) -> Vec<u8> {
        let mut out = self.callback_function.to_vec();
        out.extend(
            (Bytes::copy_from_slice(response), Bytes::copy_from_slice(&self.extra_data)).abi_encode_params(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lookup() -> OffchainLookup {
        OffchainLookup {
            sender: Address::repeat_byte(0xaa),
            urls: vec!["https://gw.example/{sender}/{data}.json".into()],
            call_data: vec![1, 2, 3],
            callback_function: [0x9b, 0xbf, 0xd1, 0x26],
            extra_data: vec![1, 2, 3],
        }
    }

    #[test]
    fn round_trips_and_checks_the_sender() {
        let data = lookup().encode();
        assert_eq!(&data[..4], &[0x55, 0x6f, 0x18, 0x30]);
        assert_eq!(OffchainLookup::decode(&data).unwrap(), lookup());
        assert_eq!(OffchainLookup::decode_from(&Address::repeat_byte(0xaa), &data).unwrap(), lookup());
        assert_eq!(
            OffchainLookup::decode_from(&Address::ZERO, &data),
            Err(OffchainLookupError::SenderMismatch {
                expected: Address::ZERO,
                actual: Address::repeat_byte(0xaa)
            })
        );
        let no_urls = OffchainLookup { urls: vec![], ..lookup() };
        assert_eq!(
            OffchainLookup::decode_from(&no_urls.sender, &no_urls.encode()),
            Err(OffchainLookupError::NoUrls)
        );
    }

    #[test]
    fn other_reverts_are_not_lookups() {
        assert_eq!(
            OffchainLookup::decode(&[0x08, 0xc3, 0x79, 0xa0]),
            Err(OffchainLookupError::NotOffchainLookup)
        );
        assert_eq!(OffchainLookup::decode(&OffchainLookup::SELECTOR), Err(OffchainLookupError::Malformed));
    }

    #[test]
    fn callback_wraps_response_and_extra_data() {
        let call = lookup().callback_calldata(&[9, 9]);
        assert_eq!(&call[..4], &lookup().callback_function);
        let (response, extra) = <(Bytes, Bytes)>::abi_decode_params(&call[4..]).unwrap();
        assert_eq!((response.to_vec(), extra.to_vec()), (vec![9, 9], vec![1, 2, 3]));
    }
}

//! The Solidity signatures the CCIP-read flow speaks, declared once.
//!
//! They are those of the reference resolver interface
//! (`packages/offchain-resolver/src/http/handleCcipRequest/encoding/getResolverInterface.ts`),
//! the `ERC3668Resolver`'s `OffchainLookup` error (EIP-3668) and ENSIP-9's
//! `addr(bytes32,uint256)`, which the reference lists in its handler but cannot decode.

alloy_sol_types::sol! {
    function resolve(bytes name, bytes data) external view returns (bytes);
    function resolveWithContext(bytes name, bytes data, bytes context) external view returns (bytes);
    function text(bytes32 node, string key) external view returns (string);
    function addr(bytes32 node) external view returns (address);
    function addr(bytes32 node, uint256 coinType) external view returns (bytes);
    error OffchainLookup(address sender, string[] urls, bytes callData, bytes4 callbackFunction, bytes extraData);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title A resolver from before ENSIP-10: records set on chain, read with `addr` and `text`.
/// @notice Test-only. It does not implement `resolve(bytes,bytes)` and says so through ERC-165,
/// so a client must call the record functions directly, and only for the exact name the resolver
/// is set on: ENSIP-10 forbids using it for subnames. Records are keyed by node, like ENS's
/// PublicResolver (the `addr(bytes32)` and `text(bytes32,string)` selectors are the same).
contract PlainResolver {
    error NotOwner();

    address public immutable owner;
    mapping(bytes32 => address) private addresses;
    mapping(bytes32 => mapping(string => string)) private texts;

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    function setAddr(bytes32 node, address a) external onlyOwner {
        addresses[node] = a;
    }

    function setText(bytes32 node, string calldata key, string calldata value) external onlyOwner {
        texts[node][key] = value;
    }

    function addr(bytes32 node) external view returns (address) {
        return addresses[node];
    }

    function text(bytes32 node, string calldata key) external view returns (string memory) {
        return texts[node][key];
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x3b3b57de // addr(bytes32)
            || interfaceId == 0x59d1d43c // text(bytes32,string)
            || interfaceId == 0x01ffc9a7; // ERC-165
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title A minimal ENS registry for the test chain.
/// @notice Test-only. It follows the ENS registry (`ENSRegistry.sol` in ensdomains/ens-contracts)
/// for the part a client reads and a test writes: the same function selectors, storage semantics
/// and events, so ethers, alloy and our own ENS client treat it as the real registry.
/// Left out on purpose: operators (`setApprovalForAll`, `isApprovedForAll`) and `setTTL`;
/// the tests deploy from one unlocked account and never need delegation.
/// The root node (0x0) belongs to the deployer, who hands out `eth`, `test.eth`, ... with
/// `setSubnodeOwner`.
contract ENSRegistry {
    // Packed into two slots exactly like the ENS registry's record.
    struct Record {
        address owner;
        address resolver;
        uint64 ttl;
    }

    mapping(bytes32 => Record) private records;

    // The ENS events, with the same signatures, so log-watching tools decode them.
    event NewOwner(bytes32 indexed node, bytes32 indexed label, address owner);
    event Transfer(bytes32 indexed node, address owner);
    event NewResolver(bytes32 indexed node, address resolver);
    event NewTTL(bytes32 indexed node, uint64 ttl);

    /// Only the owner of `node` may change it (no operators here).
    error Unauthorised(bytes32 node, address caller);

    modifier authorised(bytes32 node) {
        if (records[node].owner != msg.sender) revert Unauthorised(node, msg.sender);
        _;
    }

    constructor() {
        records[bytes32(0)].owner = msg.sender;
    }

    function setRecord(bytes32 node, address owner_, address resolver_, uint64 ttl_) external {
        setOwner(node, owner_);
        _setResolverAndTTL(node, resolver_, ttl_);
    }

    function setSubnodeRecord(bytes32 node, bytes32 label, address owner_, address resolver_, uint64 ttl_)
        external
    {
        bytes32 subnode = setSubnodeOwner(node, label, owner_);
        _setResolverAndTTL(subnode, resolver_, ttl_);
    }

    function setOwner(bytes32 node, address owner_) public authorised(node) {
        records[node].owner = owner_;
        emit Transfer(node, owner_);
    }

    /// The subnode is `keccak256(node ‖ label)`, i.e. the namehash step; returning it saves the
    /// caller from recomputing it (ENS added the return value for the same reason).
    function setSubnodeOwner(bytes32 node, bytes32 label, address owner_)
        public
        authorised(node)
        returns (bytes32)
    {
        bytes32 subnode = keccak256(abi.encodePacked(node, label));
        records[subnode].owner = owner_;
        emit NewOwner(node, label, owner_);
        return subnode;
    }

    function setResolver(bytes32 node, address resolver_) public authorised(node) {
        records[node].resolver = resolver_;
        emit NewResolver(node, resolver_);
    }

    function owner(bytes32 node) external view returns (address) {
        address addr = records[node].owner;
        // ENS reports names owned by the registry itself as unowned; kept for parity.
        return addr == address(this) ? address(0) : addr;
    }

    function resolver(bytes32 node) external view returns (address) {
        return records[node].resolver;
    }

    function ttl(bytes32 node) external view returns (uint64) {
        return records[node].ttl;
    }

    function recordExists(bytes32 node) external view returns (bool) {
        return records[node].owner != address(0);
    }

    // As in ENS: only emit when something changes, so setSubnodeRecord on an existing name is quiet.
    function _setResolverAndTTL(bytes32 node, address resolver_, uint64 ttl_) internal {
        if (resolver_ != records[node].resolver) {
            records[node].resolver = resolver_;
            emit NewResolver(node, resolver_);
        }
        if (ttl_ != records[node].ttl) {
            records[node].ttl = ttl_;
            emit NewTTL(node, ttl_);
        }
    }
}

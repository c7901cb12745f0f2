// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// ENSIP-10: a wildcard-capable resolver answers every record through one entry point.
/// `name` is the DNS-encoded name, `data` the ABI-encoded record call (`addr(node)`, `text(node,key)`, ...).
interface IExtendedResolver {
    function resolve(bytes calldata name, bytes calldata data) external view returns (bytes memory);
}

/// What the gateway is asked. It has the same signature, hence the same selector (0x9061b923), as
/// IExtendedResolver.resolve: the calldata the gateway receives is literally
/// `resolve(bytes dnsName, bytes data)`, the request the client made to this contract. This is the
/// ENS reference offchain-resolver's choice; the dm3 Ccip-Resolver (`ERC3668Resolver`, docs/protocol.md
/// §12.1) sends `resolveWithContext(name, data, context)` instead, so a gateway must accept both.
interface IResolverService {
    function resolve(bytes calldata name, bytes calldata data)
        external
        view
        returns (bytes memory result, uint64 validUntil, bytes memory sig);
}

interface IERC165 {
    function supportsInterface(bytes4 interfaceId) external view returns (bool);
}

/// @title An EIP-3668 (CCIP-read) offchain resolver whose answers are signed by a gateway.
/// @notice Test-only, written for the anvil chain tests. Every lookup reverts with OffchainLookup;
/// the client fetches the answer from one of `urls` and hands it to `resolveWithProof`, which
/// returns the record only if a trusted signer signed it (docs/protocol.md §12.2) and it has not expired.
/// `resolveWithProof` returns the gateway's `result` verbatim: the gateway must therefore answer
/// in the record's ABI encoding (`addr` as a 32-byte word, `text` as `abi.encode(string)`), which
/// is what ethers and alloy decode. (The dm3 Ccip-Resolver instead accepts a raw 20-byte `addr`
/// and widens it on chain; this contract does not.)
contract OffchainResolver is IExtendedResolver, IERC165 {
    /// EIP-3668's error; clients recognise it by its selector 0x556f1830.
    error OffchainLookup(address sender, string[] urls, bytes callData, bytes4 callbackFunction, bytes extraData);

    error NotOwner();
    error SignatureExpired(uint64 validUntil, uint256 blockTimestamp);
    error InvalidSignature();
    error UnknownSigner(address recovered);

    event UrlsChanged(string[] urls);
    event SignerChanged(address indexed signer, bool trusted);

    address public immutable owner;
    /// Gateway URL templates, e.g. `http://127.0.0.1:8080/{sender}/{data}.json` (EIP-3668 syntax).
    string[] public urls;
    mapping(address => bool) public signers;

    constructor(string[] memory urls_, address[] memory signers_) {
        owner = msg.sender;
        urls = urls_;
        emit UrlsChanged(urls_);
        for (uint256 i = 0; i < signers_.length; i++) {
            signers[signers_[i]] = true;
            emit SignerChanged(signers_[i], true);
        }
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    // memory, not calldata: solc's legacy code generator cannot copy nested calldata arrays to storage.
    function setUrls(string[] memory urls_) external onlyOwner {
        urls = urls_;
        emit UrlsChanged(urls_);
    }

    function setSigner(address signer, bool trusted) external onlyOwner {
        signers[signer] = trusted;
        emit SignerChanged(signer, trusted);
    }

    /// The public getter for a dynamic array returns one element; tests want them all.
    function getUrls() external view returns (string[] memory) {
        return urls;
    }

    /// Always reverts: the answer lives off chain. extraData is the request itself, so
    /// `resolveWithProof` can bind the signature to exactly this request (keccak256(extraData)
    /// equals the keccak256(calldata) the gateway signs).
    function resolve(bytes calldata name, bytes calldata data) external view override returns (bytes memory) {
        bytes memory callData = abi.encodeWithSelector(IResolverService.resolve.selector, name, data);
        revert OffchainLookup(address(this), urls, callData, this.resolveWithProof.selector, callData);
    }

    /// The EIP-3668 callback. `response` is the gateway's `data`: abi.encode(bytes result,
    /// uint64 validUntil, bytes sig). Reverts unless a trusted signer signed, per docs/protocol.md §12.2,
    ///   h = keccak256(0x1900 ‖ address(this) ‖ validUntil (8 bytes BE) ‖ keccak256(request) ‖ keccak256(result))
    /// as an EIP-191 personal message over the 32 bytes of h, and validUntil has not passed.
    function resolveWithProof(bytes calldata response, bytes calldata extraData) external view returns (bytes memory) {
        (bytes memory result, uint64 validUntil, bytes memory sig) = abi.decode(response, (bytes, uint64, bytes));
        if (validUntil < block.timestamp) revert SignatureExpired(validUntil, block.timestamp);
        // 0x1900 is EIP-191 version 0 ("data with intended validator"): the resolver's own address
        // in the hash stops a signature for one resolver from being replayed on another.
        bytes32 h = keccak256(
            abi.encodePacked(hex"1900", address(this), validUntil, keccak256(extraData), keccak256(result))
        );
        address recovered = ECDSA.recover(ECDSA.toEthSignedMessageHash(h), sig);
        if (!signers[recovered]) revert UnknownSigner(recovered);
        return result;
    }

    function supportsInterface(bytes4 interfaceId) external pure override returns (bool) {
        return interfaceId == type(IExtendedResolver).interfaceId // 0x9061b923, ENSIP-10 wildcard
            || interfaceId == type(IERC165).interfaceId; // 0x01ffc9a7
    }
}

/// Just enough ECDSA for the check above; a library so the rules are in one readable place.
library ECDSA {
    /// secp256k1 order n / 2. Signatures with s above it are the malleable twin (n - s) of a
    /// valid one; like OpenZeppelin we accept only the lower half so each signature is unique.
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// The digest `personal_sign` signs for a 32-byte message: the length is always 32.
    function toEthSignedMessageHash(bytes32 h) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", h));
    }

    /// Recovers the signer of a 65-byte r ‖ s ‖ v signature, v in {27, 28} as wallets emit it.
    /// Reverts instead of returning address(0), so a garbage signature can never match a
    /// zero-address entry by accident.
    function recover(bytes32 digest, bytes memory sig) internal pure returns (address) {
        if (sig.length != 65) revert OffchainResolver.InvalidSignature();
        bytes32 r;
        bytes32 s;
        uint8 v;
        // The signature is a bytes array in memory: 32 bytes of length, then r, s and v.
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) revert OffchainResolver.InvalidSignature();
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert OffchainResolver.InvalidSignature();
        return signer;
    }
}

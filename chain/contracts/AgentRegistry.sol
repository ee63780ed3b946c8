// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title AgentRegistry
/// @notice Each node publishes one peer record under its Ethereum address: its Swarm
/// inbox (GSOC address), its uncompressed secp256k1 public key and a Swarm reference to
/// its capabilities document. The public key must belong to the sender, so a record can
/// only ever describe the account that wrote it.
contract AgentRegistry {
    struct Peer {
        bytes32 inbox;
        bytes32 capabilities;
        uint64 registeredAt;
        uint64 updatedAt;
        bytes publicKey;
    }

    error InvalidPublicKey();
    error NotRegistered(address account);
    error IndexOutOfRange(uint256 index, uint256 count);

    event PeerRegistered(address indexed account, bytes32 inbox, bytes32 capabilities, bytes publicKey);
    event PeerUpdated(address indexed account, bytes32 inbox, bytes32 capabilities);

    mapping(address => Peer) private _peers;
    address[] private _accounts;

    /// @notice Create or replace the sender's record. `publicKey` is the 64-byte
    /// uncompressed key (no 0x04 prefix) whose keccak256 ends in the sender's address.
    function register(bytes32 inbox, bytes calldata publicKey, bytes32 capabilities) external {
        if (publicKey.length != 64 || address(uint160(uint256(keccak256(publicKey)))) != msg.sender) {
            revert InvalidPublicKey();
        }
        Peer storage peer = _peers[msg.sender];
        peer.inbox = inbox;
        peer.capabilities = capabilities;
        peer.updatedAt = uint64(block.timestamp);
        if (peer.registeredAt == 0) {
            peer.registeredAt = uint64(block.timestamp);
            peer.publicKey = publicKey;
            _accounts.push(msg.sender);
            emit PeerRegistered(msg.sender, inbox, capabilities, publicKey);
        } else {
            emit PeerUpdated(msg.sender, inbox, capabilities);
        }
    }

    function isRegistered(address account) external view returns (bool) {
        return _peers[account].registeredAt != 0;
    }

    function peerOf(address account) public view returns (Peer memory) {
        Peer memory peer = _peers[account];
        if (peer.registeredAt == 0) revert NotRegistered(account);
        return peer;
    }

    function peerCount() external view returns (uint256) {
        return _accounts.length;
    }

    function peerAt(uint256 index) external view returns (address) {
        if (index >= _accounts.length) revert IndexOutOfRange(index, _accounts.length);
        return _accounts[index];
    }

    /// @notice Up to `limit` registered accounts starting at `offset`, in registration order.
    function peers(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        uint256 count = _accounts.length;
        if (offset >= count) return new address[](0);
        uint256 end = offset + limit > count ? count : offset + limit;
        page = new address[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = _accounts[i];
        }
    }
}

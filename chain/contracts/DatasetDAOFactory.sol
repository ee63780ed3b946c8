// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {DatasetDAO, IDatasetForkFactory} from "./DatasetDAO.sol";

/// @title DatasetDAOFactory
/// @notice Creates dataset DAOs and their forks, and lists every DAO it made, so a
/// client can trust that a DAO address it finds here runs the audited code.
contract DatasetDAOFactory is IDatasetForkFactory {
    /// @notice Seconds during which members of a parent DAO may join a new fork.
    uint64 public immutable forkJoinWindow;

    mapping(address => bool) public isDao;
    address[] private _daos;

    error NotADao(address caller);
    error IndexOutOfRange(uint256 index, uint256 count);

    event DaoCreated(address indexed dao, address indexed parent, address indexed creator, bytes32 root);

    constructor(uint64 forkJoinWindow_) {
        forkJoinWindow = forkJoinWindow_;
    }

    /// @notice A new DAO at `root` with fixed `members` (the caller need not be one).
    function create(
        bytes32 root,
        bytes32 description,
        address[] calldata members,
        uint16 quorumBps,
        uint64 votingPeriod
    ) external returns (address dao) {
        dao = address(new DatasetDAO(address(0), root, description, members, quorumBps, votingPeriod, 0));
        _record(dao, address(0), msg.sender, root);
    }

    /// @inheritdoc IDatasetForkFactory
    function createFork(bytes32 root, bytes32 description, address founder, uint16 quorumBps, uint64 votingPeriod)
        external
        returns (address dao)
    {
        if (!isDao[msg.sender]) revert NotADao(msg.sender);
        address[] memory members = new address[](1);
        members[0] = founder;
        uint64 joinDeadline = uint64(block.timestamp) + forkJoinWindow;
        dao = address(new DatasetDAO(msg.sender, root, description, members, quorumBps, votingPeriod, joinDeadline));
        _record(dao, msg.sender, founder, root);
    }

    function daoCount() external view returns (uint256) {
        return _daos.length;
    }

    function daoAt(uint256 index) external view returns (address) {
        if (index >= _daos.length) revert IndexOutOfRange(index, _daos.length);
        return _daos[index];
    }

    function _record(address dao, address parent, address creator, bytes32 root) private {
        isDao[dao] = true;
        _daos.push(dao);
        emit DaoCreated(dao, parent, creator, root);
    }
}

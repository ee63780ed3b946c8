// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice What a DatasetDAO needs from the factory that made it: a way to fork.
interface IDatasetForkFactory {
    function createFork(bytes32 root, bytes32 description, address founder, uint16 quorumBps, uint64 votingPeriod)
        external
        returns (address);
}

/// @title DatasetDAO
/// @notice Governs one dataset's Swarm root. Members propose a new root (with a Swarm
/// reference to a description of the change) and vote yes or no until the proposal's
/// deadline. A proposal executes when its yes votes reach the quorum (a share of the
/// membership, in basis points, rounded up) and outnumber the no votes, either after the
/// deadline or earlier once a strict majority of all members voted yes. A proposal is
/// tied to the root it was made against, so two proposals cannot silently overwrite each
/// other. Every executed root is appended to the history.
///
/// Forking: any member may `fork()`. The factory creates a child DAO with the current
/// root and description, `parent` set to this DAO, the caller as its only member, and a
/// join window (the factory's `forkJoinWindow`). During that window each member of the
/// parent opts in by calling `join()` on the child with its own key; nobody can be
/// enrolled by someone else, and after the window the membership is fixed. The child may
/// not execute a proposal early while its membership can still grow.
contract DatasetDAO {
    struct Proposal {
        bytes32 root;
        bytes32 description;
        bytes32 baseRoot;
        address proposer;
        uint64 deadline;
        uint32 yes;
        uint32 no;
        bool executed;
    }

    struct RootEntry {
        bytes32 root;
        bytes32 description;
        uint64 proposalId;
        uint64 timestamp;
    }

    uint16 internal constant BPS = 10_000;

    address public immutable factory;
    address public immutable parent;
    uint16 public immutable quorumBps;
    uint64 public immutable votingPeriod;
    uint64 public immutable joinDeadline;

    mapping(address => bool) public isMember;
    address[] private _members;
    Proposal[] private _proposals;
    mapping(uint256 => mapping(address => bool)) public hasVoted;
    RootEntry[] private _history;

    error NotMember(address account);
    error AlreadyMember(address account);
    error NoMembers();
    error InvalidQuorum(uint16 quorumBps);
    error InvalidVotingPeriod();
    error ProposalNotFound(uint256 proposalId);
    error VotingClosed(uint256 id);
    error AlreadyVoted(uint256 id, address voter);
    error QuorumNotReached(uint256 proposalId, uint256 yes, uint256 no, uint256 quorum);
    error ProposalVotingOpen(uint256 proposalId);
    error ProposalAlreadyExecuted(uint256 proposalId);
    error StaleProposal(uint256 proposalId, bytes32 baseRoot, bytes32 currentRoot);
    error JoinWindowClosed();
    error NotParentMember(address account);

    event MemberJoined(address indexed member);
    event ProposalCreated(
        uint256 indexed proposalId, address indexed proposer, bytes32 root, bytes32 description, uint64 deadline
    );
    event VoteCast(uint256 indexed proposalId, address indexed voter, bool support);
    event ProposalExecuted(uint256 indexed proposalId, bytes32 root);
    event RootChanged(uint256 indexed index, bytes32 root, bytes32 description);
    event Forked(address indexed child, address indexed founder, bytes32 root);

    modifier onlyMember() {
        if (!isMember[msg.sender]) revert NotMember(msg.sender);
        _;
    }

    constructor(
        address parent_,
        bytes32 root,
        bytes32 description,
        address[] memory members,
        uint16 quorumBps_,
        uint64 votingPeriod_,
        uint64 joinDeadline_
    ) {
        if (members.length == 0) revert NoMembers();
        if (quorumBps_ == 0 || quorumBps_ > BPS) revert InvalidQuorum(quorumBps_);
        if (votingPeriod_ == 0) revert InvalidVotingPeriod();
        factory = msg.sender;
        parent = parent_;
        quorumBps = quorumBps_;
        votingPeriod = votingPeriod_;
        joinDeadline = joinDeadline_;
        for (uint256 i = 0; i < members.length; ++i) {
            _addMember(members[i]);
        }
        _pushRoot(root, description, type(uint64).max);
    }

    // ------------------------------------------------------------ governance

    function propose(bytes32 root, bytes32 description) external onlyMember returns (uint256 proposalId) {
        proposalId = _proposals.length;
        uint64 deadline = uint64(block.timestamp) + votingPeriod;
        _proposals.push(
            Proposal({
                root: root,
                description: description,
                baseRoot: currentRoot(),
                proposer: msg.sender,
                deadline: deadline,
                yes: 0,
                no: 0,
                executed: false
            })
        );
        emit ProposalCreated(proposalId, msg.sender, root, description, deadline);
    }

    function vote(uint256 proposalId, bool support) external onlyMember {
        Proposal storage proposal = _proposal(proposalId);
        if (proposal.executed) revert ProposalAlreadyExecuted(proposalId);
        if (block.timestamp > proposal.deadline) revert VotingClosed(proposalId);
        if (hasVoted[proposalId][msg.sender]) revert AlreadyVoted(proposalId, msg.sender);
        hasVoted[proposalId][msg.sender] = true;
        if (support) {
            proposal.yes += 1;
        } else {
            proposal.no += 1;
        }
        emit VoteCast(proposalId, msg.sender, support);
    }

    /// @notice Anyone may execute a proposal that passed.
    function execute(uint256 proposalId) external {
        Proposal storage proposal = _proposal(proposalId);
        if (proposal.executed) revert ProposalAlreadyExecuted(proposalId);
        uint256 quorum = quorumVotes();
        if (proposal.yes < quorum || proposal.yes <= proposal.no) {
            revert QuorumNotReached(proposalId, proposal.yes, proposal.no, quorum);
        }
        bool decidedEarly = block.timestamp > joinDeadline && uint256(proposal.yes) * 2 > _members.length;
        if (block.timestamp <= proposal.deadline && !decidedEarly) revert ProposalVotingOpen(proposalId);
        bytes32 current = currentRoot();
        if (proposal.baseRoot != current) revert StaleProposal(proposalId, proposal.baseRoot, current);
        proposal.executed = true;
        _pushRoot(proposal.root, proposal.description, uint64(proposalId));
        emit ProposalExecuted(proposalId, proposal.root);
    }

    // ------------------------------------------------------------ forking

    /// @notice Start a fork at the current root; the caller is its first member.
    function fork() external onlyMember returns (address child) {
        RootEntry storage head = _history[_history.length - 1];
        child = IDatasetForkFactory(factory).createFork(head.root, head.description, msg.sender, quorumBps, votingPeriod);
        emit Forked(child, msg.sender, head.root);
    }

    /// @notice Opt in to this fork: open to members of the parent during the join window.
    function join() external {
        if (parent == address(0) || block.timestamp > joinDeadline) revert JoinWindowClosed();
        if (!DatasetDAO(parent).isMember(msg.sender)) revert NotParentMember(msg.sender);
        _addMember(msg.sender);
    }

    // ------------------------------------------------------------ views

    function currentRoot() public view returns (bytes32) {
        return _history[_history.length - 1].root;
    }

    function rootCount() external view returns (uint256) {
        return _history.length;
    }

    function rootAt(uint256 index) external view returns (RootEntry memory) {
        return _history[index];
    }

    function memberCount() external view returns (uint256) {
        return _members.length;
    }

    function memberAt(uint256 index) external view returns (address) {
        return _members[index];
    }

    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    function getProposal(uint256 proposalId) external view returns (Proposal memory) {
        return _proposal(proposalId);
    }

    /// @notice Yes votes a proposal needs: quorumBps of the members, rounded up.
    function quorumVotes() public view returns (uint256) {
        return (_members.length * quorumBps + BPS - 1) / BPS;
    }

    // ------------------------------------------------------------ internals

    function _proposal(uint256 proposalId) private view returns (Proposal storage) {
        if (proposalId >= _proposals.length) revert ProposalNotFound(proposalId);
        return _proposals[proposalId];
    }

    function _addMember(address account) private {
        if (isMember[account]) revert AlreadyMember(account);
        isMember[account] = true;
        _members.push(account);
        emit MemberJoined(account);
    }

    function _pushRoot(bytes32 root, bytes32 description, uint64 proposalId) private {
        _history.push(
            RootEntry({root: root, description: description, proposalId: proposalId, timestamp: uint64(block.timestamp)})
        );
        emit RootChanged(_history.length - 1, root, description);
    }
}

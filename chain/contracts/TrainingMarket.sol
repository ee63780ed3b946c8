// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

interface IDatasetRoot {
    function currentRoot() external view returns (bytes32);
}

/// @title TrainingMarket
/// @notice Escrowed, verifiable training jobs (see PROTOCOLS.md, "Training job lifecycle").
///
///   Posted --claim--> Claimed --submit--> Submitted --window passes, finalize--> Finalized
///   Submitted --challenge(step, record, proof, bond)--> Disputed --resolve--> Finalized | Slashed
///   Posted | Claimed --deadline passes, expire--> Expired     Posted --cancel--> Cancelled
///
/// Money: trainers and validators `stake`; a claim locks `trainerStakeFor(reward)` of the
/// trainer's free stake; a challenge locks `minValidatorStake` of each committee member.
/// Every payout is credited to `pendingWithdrawal` and pulled with `withdraw`, so the
/// balance of this contract always equals stakes + open escrows + open bonds + pending
/// withdrawals. Each job leaves the open states exactly once, which is what makes a slash
/// or a payment happen at most once.
///
/// Log commitment: `logRoot` is a binary Merkle root over the step records, leaf i being
/// record i; leaves are keccak256(0x00 || record), inner nodes keccak256(0x01 || left ||
/// right), and the leaf count is padded to a power of two with bytes32(0) leaves.
///
/// Disputes: a committee of up to `committeeSize` registered validators (excluding the
/// parties) is drawn with the previous block hash, re-executes the step and votes. A strict
/// majority of the committee decides at once; if the voting period ends without one, the
/// committee failed to act and neither party did, so the trainer is paid (the challenge
/// proved nothing) and the challenger's bond is returned.
contract TrainingMarket {
    enum JobStatus {
        None,
        Posted,
        Claimed,
        Submitted,
        Disputed,
        Finalized,
        Slashed,
        Expired,
        Cancelled
    }

    enum Outcome {
        TrainerWon,
        ChallengerWon,
        TimedOut
    }

    struct JobSpec {
        address dao;
        bytes32 datasetRoot;
        bytes32 baseModel;
        bytes32 hyperparams;
        uint32 steps;
        uint64 seed;
        uint40 deadline;
        uint24 challengeWindow;
    }

    struct Job {
        address requester;
        uint88 reward;
        JobStatus status;
        address trainer;
        /// Posted/Claimed: the job deadline. Submitted: end of the challenge window.
        uint40 expiresAt;
        uint24 challengeWindow;
        uint32 steps;
        bytes32 specHash;
        bytes32 logRoot;
        bytes32 adapterRef;
    }

    struct Dispute {
        address challenger;
        uint88 bond;
        uint8 votesForTrainer;
        uint32 step;
        uint40 voteEnd;
        uint8 votesForChallenger;
        bytes32 recordHash;
        address[] committee;
    }

    struct Account {
        uint96 staked;
        uint96 locked;
        bool validator;
    }

    struct Params {
        uint96 minTrainerStake;
        uint96 minValidatorStake;
        uint88 minChallengeBond;
        uint40 votingPeriod;
        uint8 committeeSize;
    }

    uint96 public immutable minTrainerStake;
    uint96 public immutable minValidatorStake;
    uint88 public immutable minChallengeBond;
    uint40 public immutable votingPeriod;
    uint8 public immutable committeeSize;

    uint256 private _nextJobId = 1;
    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => Dispute) private _disputes;
    mapping(uint256 => mapping(address => bool)) public hasVoted;
    mapping(address => Account) private _accounts;
    mapping(address => uint256) public pendingWithdrawal;
    address[] private _validators;
    bool private transient _entered;

    error Reentrancy();
    error InvalidParams();
    error ZeroAmount();
    error AmountTooLarge(uint256 amount, uint256 maximum);
    error InsufficientFreeStake(uint256 free, uint256 needed);
    error AlreadyValidator(address account);
    error NothingToWithdraw(address account);
    error InvalidJobSpec();
    error DatasetRootMismatch(address dao, bytes32 expected, bytes32 actual);
    error JobNotFound(uint256 jobId);
    error JobAlreadyClaimed(uint256 jobId);
    error JobAlreadySettled(uint256 jobId, JobStatus status);
    error WrongStatus(uint256 jobId, JobStatus status);
    error NotRequester(uint256 jobId);
    error NotTrainer(uint256 jobId);
    error DeadlinePassed(uint256 jobId, uint256 deadline);
    error DeadlineNotPassed(uint256 jobId, uint256 deadline);
    error ChallengeWindowOpen(uint256 jobId, uint256 endsAt);
    error ChallengeWindowClosed(uint256 jobId, uint256 endedAt);
    error CannotChallengeOwnJob(uint256 jobId);
    error BondTooSmall(uint256 sent, uint256 minimum);
    error StepOutOfRange(uint256 step, uint256 steps);
    error InvalidProof(uint256 jobId, uint256 step);
    error NoEligibleValidators(uint256 jobId);
    error NotCommitteeMember(uint256 jobId, address account);
    error AlreadyVoted(uint256 id, address voter);
    error VotingClosed(uint256 id);
    error VotingStillOpen(uint256 jobId, uint256 endsAt);

    event Staked(address indexed account, uint256 amount, uint256 total);
    event Unstaked(address indexed account, uint256 amount, uint256 total);
    event ValidatorRegistered(address indexed account);
    event Withdrawn(address indexed account, uint256 amount);
    event JobPosted(uint256 indexed jobId, address indexed requester, uint256 reward, JobSpec spec);
    event JobCancelled(uint256 indexed jobId);
    event JobClaimed(uint256 indexed jobId, address indexed trainer, uint256 stake);
    event JobSubmitted(uint256 indexed jobId, bytes32 logRoot, bytes32 adapterRef, uint256 challengeEndsAt);
    event JobChallenged(
        uint256 indexed jobId,
        address indexed challenger,
        uint256 step,
        uint256 bond,
        bytes record,
        address[] committee,
        uint256 voteEnd
    );
    event DisputeVoted(uint256 indexed jobId, address indexed validator, bool trainerCorrect);
    event DisputeResolved(uint256 indexed jobId, Outcome outcome);
    event JobFinalized(uint256 indexed jobId, address indexed trainer, uint256 payout);
    event JobSlashed(uint256 indexed jobId, address indexed trainer, uint256 amount, address indexed beneficiary);
    event JobExpired(uint256 indexed jobId, uint256 refund);

    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }

    constructor(Params memory params) {
        if (params.committeeSize == 0 || params.votingPeriod == 0 || params.minChallengeBond == 0) {
            revert InvalidParams();
        }
        minTrainerStake = params.minTrainerStake;
        minValidatorStake = params.minValidatorStake;
        minChallengeBond = params.minChallengeBond;
        votingPeriod = params.votingPeriod;
        committeeSize = params.committeeSize;
    }

    // ------------------------------------------------------------ stake and withdraw

    function stake() external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        if (msg.value > type(uint96).max) revert AmountTooLarge(msg.value, type(uint96).max);
        Account storage account = _accounts[msg.sender];
        account.staked += uint96(msg.value);
        emit Staked(msg.sender, msg.value, account.staked);
    }

    /// @notice Move free (unlocked) stake to the sender's pending withdrawal.
    function unstake(uint96 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Account storage account = _accounts[msg.sender];
        uint256 free = account.staked - account.locked;
        if (amount > free) revert InsufficientFreeStake(free, amount);
        account.staked -= amount;
        pendingWithdrawal[msg.sender] += amount;
        emit Unstaked(msg.sender, amount, account.staked);
    }

    function registerValidator() external nonReentrant {
        Account storage account = _accounts[msg.sender];
        if (account.validator) revert AlreadyValidator(msg.sender);
        uint256 free = account.staked - account.locked;
        if (free < minValidatorStake) revert InsufficientFreeStake(free, minValidatorStake);
        account.validator = true;
        _validators.push(msg.sender);
        emit ValidatorRegistered(msg.sender);
    }

    function withdraw() external nonReentrant {
        uint256 amount = pendingWithdrawal[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        pendingWithdrawal[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok, bytes memory reason) = msg.sender.call{value: amount}("");
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    // ------------------------------------------------------------ job lifecycle

    function postJob(JobSpec calldata spec) external payable nonReentrant returns (uint256 jobId) {
        if (msg.value == 0) revert ZeroAmount();
        if (msg.value > type(uint88).max) revert AmountTooLarge(msg.value, type(uint88).max);
        if (spec.steps == 0 || spec.challengeWindow == 0 || spec.deadline <= block.timestamp) {
            revert InvalidJobSpec();
        }
        bytes32 root = IDatasetRoot(spec.dao).currentRoot();
        if (root != spec.datasetRoot) revert DatasetRootMismatch(spec.dao, root, spec.datasetRoot);
        jobId = _nextJobId++;
        Job storage job = _jobs[jobId];
        job.requester = msg.sender;
        job.reward = uint88(msg.value);
        job.status = JobStatus.Posted;
        job.expiresAt = spec.deadline;
        job.challengeWindow = spec.challengeWindow;
        job.steps = spec.steps;
        job.specHash = keccak256(abi.encode(spec));
        emit JobPosted(jobId, msg.sender, msg.value, spec);
    }

    /// @notice Withdraw an unclaimed job; the reward goes back to the requester.
    function cancel(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        if (job.requester != msg.sender) revert NotRequester(jobId);
        _requireStatus(jobId, job.status, JobStatus.Posted);
        job.status = JobStatus.Cancelled;
        pendingWithdrawal[msg.sender] += job.reward;
        emit JobCancelled(jobId);
    }

    function claim(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        JobStatus status = job.status;
        if (status == JobStatus.Claimed || status == JobStatus.Submitted || status == JobStatus.Disputed) {
            revert JobAlreadyClaimed(jobId);
        }
        _requireStatus(jobId, status, JobStatus.Posted);
        if (block.timestamp > job.expiresAt) revert DeadlinePassed(jobId, job.expiresAt);
        uint96 required = trainerStakeFor(job.reward);
        Account storage account = _accounts[msg.sender];
        uint256 free = account.staked - account.locked;
        if (free < required) revert InsufficientFreeStake(free, required);
        account.locked += required;
        job.trainer = msg.sender;
        job.status = JobStatus.Claimed;
        emit JobClaimed(jobId, msg.sender, required);
    }

    function submit(uint256 jobId, bytes32 logRoot, bytes32 adapterRef) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Claimed);
        if (job.trainer != msg.sender) revert NotTrainer(jobId);
        if (block.timestamp > job.expiresAt) revert DeadlinePassed(jobId, job.expiresAt);
        uint40 endsAt = uint40(block.timestamp) + job.challengeWindow;
        job.logRoot = logRoot;
        job.adapterRef = adapterRef;
        job.expiresAt = endsAt;
        job.status = JobStatus.Submitted;
        emit JobSubmitted(jobId, logRoot, adapterRef, endsAt);
    }

    /// @notice After an unchallenged window, pay the trainer and free its stake.
    function finalize(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Submitted);
        if (block.timestamp <= job.expiresAt) revert ChallengeWindowOpen(jobId, job.expiresAt);
        job.status = JobStatus.Finalized;
        _accounts[job.trainer].locked -= trainerStakeFor(job.reward);
        pendingWithdrawal[job.trainer] += job.reward;
        emit JobFinalized(jobId, job.trainer, job.reward);
    }

    /// @notice Close a job whose deadline passed before it was submitted. A claimed job
    /// slashes the trainer's stake to the requester; either way the reward is refunded.
    function expire(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        JobStatus status = job.status;
        if (status != JobStatus.Posted) _requireStatus(jobId, status, JobStatus.Claimed);
        if (block.timestamp <= job.expiresAt) revert DeadlineNotPassed(jobId, job.expiresAt);
        job.status = JobStatus.Expired;
        uint256 refund = job.reward;
        if (status == JobStatus.Claimed) {
            uint96 slashed = _slash(job.trainer, job.reward);
            refund += slashed;
            emit JobSlashed(jobId, job.trainer, slashed, job.requester);
        }
        pendingWithdrawal[job.requester] += refund;
        emit JobExpired(jobId, refund);
    }

    // ------------------------------------------------------------ disputes

    /// @notice Dispute step `step` of a submitted log: `record` is the step record and
    /// `proof` its Merkle path to the job's logRoot. Send at least `minChallengeBond`.
    function challenge(uint256 jobId, uint32 step, bytes calldata record, bytes32[] calldata proof)
        external
        payable
        nonReentrant
    {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Submitted);
        if (block.timestamp > job.expiresAt) revert ChallengeWindowClosed(jobId, job.expiresAt);
        if (msg.sender == job.trainer) revert CannotChallengeOwnJob(jobId);
        if (msg.value < minChallengeBond) revert BondTooSmall(msg.value, minChallengeBond);
        if (msg.value > type(uint88).max) revert AmountTooLarge(msg.value, type(uint88).max);
        if (step >= job.steps) revert StepOutOfRange(step, job.steps);
        bytes32 recordHash = keccak256(abi.encodePacked(bytes1(0x00), record));
        if (!_verify(recordHash, step, proof, job.logRoot)) revert InvalidProof(jobId, step);

        address[] memory committee = _drawCommittee(jobId, job.trainer, job.requester);
        if (committee.length == 0) revert NoEligibleValidators(jobId);
        for (uint256 i = 0; i < committee.length; ++i) {
            _accounts[committee[i]].locked += minValidatorStake;
        }
        uint40 voteEnd = uint40(block.timestamp) + votingPeriod;
        Dispute storage dispute = _disputes[jobId];
        dispute.challenger = msg.sender;
        dispute.bond = uint88(msg.value);
        dispute.step = step;
        dispute.voteEnd = voteEnd;
        dispute.recordHash = recordHash;
        dispute.committee = committee;
        job.status = JobStatus.Disputed;
        emit JobChallenged(jobId, msg.sender, step, msg.value, record, committee, voteEnd);
    }

    /// @notice A committee member's verdict after re-executing the disputed step.
    function vote(uint256 jobId, bool trainerCorrect) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Disputed);
        Dispute storage dispute = _disputes[jobId];
        if (block.timestamp > dispute.voteEnd) revert VotingClosed(jobId);
        if (!_inCommittee(dispute.committee, msg.sender)) revert NotCommitteeMember(jobId, msg.sender);
        if (hasVoted[jobId][msg.sender]) revert AlreadyVoted(jobId, msg.sender);
        hasVoted[jobId][msg.sender] = true;
        if (trainerCorrect) {
            dispute.votesForTrainer += 1;
        } else {
            dispute.votesForChallenger += 1;
        }
        emit DisputeVoted(jobId, msg.sender, trainerCorrect);
    }

    /// @notice Settle a dispute: at once when a majority of the committee agrees,
    /// otherwise after the voting period (see the contract notice for the timeout rule).
    function resolve(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Disputed);
        Dispute storage dispute = _disputes[jobId];
        uint256 majority = dispute.committee.length / 2 + 1;
        Outcome outcome;
        if (dispute.votesForChallenger >= majority) {
            outcome = Outcome.ChallengerWon;
        } else if (dispute.votesForTrainer >= majority) {
            outcome = Outcome.TrainerWon;
        } else if (block.timestamp <= dispute.voteEnd) {
            revert VotingStillOpen(jobId, dispute.voteEnd);
        } else {
            outcome = Outcome.TimedOut;
        }
        for (uint256 i = 0; i < dispute.committee.length; ++i) {
            _accounts[dispute.committee[i]].locked -= minValidatorStake;
        }
        address trainer = job.trainer;
        if (outcome == Outcome.ChallengerWon) {
            job.status = JobStatus.Slashed;
            uint96 slashed = _slash(trainer, job.reward);
            pendingWithdrawal[dispute.challenger] += uint256(slashed) + dispute.bond;
            pendingWithdrawal[job.requester] += job.reward;
            emit JobSlashed(jobId, trainer, slashed, dispute.challenger);
        } else {
            job.status = JobStatus.Finalized;
            _accounts[trainer].locked -= trainerStakeFor(job.reward);
            uint256 payout = job.reward;
            if (outcome == Outcome.TrainerWon) {
                payout += dispute.bond;
            } else {
                pendingWithdrawal[dispute.challenger] += dispute.bond;
            }
            pendingWithdrawal[trainer] += payout;
            emit JobFinalized(jobId, trainer, payout);
        }
        emit DisputeResolved(jobId, outcome);
    }

    // ------------------------------------------------------------ views

    /// @notice Stake a claim on a job with this reward locks: the reward, at least minTrainerStake.
    function trainerStakeFor(uint256 reward) public view returns (uint96) {
        return reward > minTrainerStake ? uint96(reward) : minTrainerStake;
    }

    function jobCount() external view returns (uint256) {
        return _nextJobId - 1;
    }

    function getJob(uint256 jobId) external view returns (Job memory) {
        return _job(jobId);
    }

    function getDispute(uint256 jobId) external view returns (Dispute memory) {
        return _disputes[jobId];
    }

    function accountOf(address account) external view returns (Account memory) {
        return _accounts[account];
    }

    function validatorCount() external view returns (uint256) {
        return _validators.length;
    }

    function validatorAt(uint256 index) external view returns (address) {
        return _validators[index];
    }

    // ------------------------------------------------------------ internals

    function _job(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == JobStatus.None) revert JobNotFound(jobId);
    }

    function _requireStatus(uint256 jobId, JobStatus status, JobStatus expected) private pure {
        if (status == expected) return;
        if (status >= JobStatus.Finalized) revert JobAlreadySettled(jobId, status);
        revert WrongStatus(jobId, status);
    }

    /// @dev Burn the trainer's locked stake for a job with this reward; the caller credits it.
    function _slash(address trainer, uint256 reward) private returns (uint96 amount) {
        Account storage account = _accounts[trainer];
        amount = trainerStakeFor(reward);
        account.locked -= amount;
        account.staked -= amount;
    }

    function _verify(bytes32 leaf, uint256 index, bytes32[] calldata proof, bytes32 root)
        private
        pure
        returns (bool)
    {
        bytes32 node = leaf;
        for (uint256 i = 0; i < proof.length; ++i) {
            node = index & 1 == 0
                ? keccak256(abi.encodePacked(bytes1(0x01), node, proof[i]))
                : keccak256(abi.encodePacked(bytes1(0x01), proof[i], node));
            index >>= 1;
        }
        return index == 0 && node == root;
    }

    function _drawCommittee(uint256 jobId, address trainer, address requester)
        private
        view
        returns (address[] memory committee)
    {
        uint256 n = _validators.length;
        uint256 k = committeeSize;
        committee = new address[](k);
        uint256 found = 0;
        if (n == 0) {
            assembly ("memory-safe") {
                mstore(committee, 0)
            }
            return committee;
        }
        bytes32 seed = keccak256(abi.encode(blockhash(block.number - 1), jobId));
        uint256 probes = 2 * k;
        // Random probes first, then a sweep so that a small eligible set is still found.
        for (uint256 attempt = 0; found < k && attempt < probes + n; ++attempt) {
            uint256 index = attempt < probes ? uint256(keccak256(abi.encode(seed, attempt))) % n : attempt - probes;
            address candidate = _validators[index];
            if (candidate == trainer || candidate == requester || candidate == msg.sender) continue;
            Account storage account = _accounts[candidate];
            if (account.staked - account.locked < minValidatorStake) continue;
            if (_contains(committee, found, candidate)) continue;
            committee[found++] = candidate;
        }
        assembly ("memory-safe") {
            mstore(committee, found)
        }
    }

    function _contains(address[] memory list, uint256 length, address item) private pure returns (bool) {
        for (uint256 i = 0; i < length; ++i) {
            if (list[i] == item) return true;
        }
        return false;
    }

    function _inCommittee(address[] storage committee, address account) private view returns (bool) {
        for (uint256 i = 0; i < committee.length; ++i) {
            if (committee[i] == account) return true;
        }
        return false;
    }
}

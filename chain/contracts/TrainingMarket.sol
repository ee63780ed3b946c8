// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

interface IDatasetRoot {
    function currentRoot() external view returns (bytes32);
}

/// @title TrainingMarket
/// @notice Escrowed, verifiable training jobs (see PROTOCOLS.md, "Training job lifecycle").
///
///   Posted --claim--> Claimed --submit--> Submitted --window passes, finalize--> Finalized
///   Submitted --challenge(step, prev record, record, bond)--> Disputed
///   Disputed --drawCommittee, votes, resolve--> Finalized | Slashed
///   Posted | Claimed --deadline passes, expire--> Expired     Posted --cancel--> Cancelled
///
/// Money: trainers and validators `stake`; a claim locks `trainerStakeFor(reward)` of the
/// trainer's free stake; a drawn committee seat locks `minValidatorStake` of its member.
/// Every payout is credited to `pendingWithdrawal` and pulled with `withdraw`, so the
/// balance of this contract always equals stakes + open escrows + open bonds + pending
/// withdrawals. Each job leaves the open states exactly once, which is what makes a slash
/// or a payment happen at most once.
///
/// Log commitment: `logRoot` is a binary Merkle root over the step records, leaf i being
/// record i; leaves are keccak256(0x00 || record), inner nodes keccak256(0x01 || left ||
/// right), and the leaf count is padded to a power of two with bytes32(0) leaves. Records
/// are opaque bytes here: the contract hashes them and re-emits them, nothing more.
///
/// Disputes, in four moves, each of which anyone may make except the vote:
///  1. `challenge(step, prevRecord, prevProof, record, proof)` proves records step-1 and
///     step against the logRoot, so both the disputed post-state and the pre-state it
///     must be computed from are committed on chain. Step 0 takes no previous record: its
///     pre-state is the job's initial state, which is defined by the job spec alone (base
///     model, hyperparameters and seed; the LoRA weights initialised from the seed).
///  2. `drawCommittee` once `drawDelay` blocks have passed: the seed is the hash of block
///     challengeBlock + drawDelay, which did not exist when the challenger signed. The
///     hash is readable for 256 blocks; after that a draw re-anchors to the current block
///     and waits again. Residual grinding risk: the producer of the seed block can
///     withhold it or reorder its transactions to try other hashes (one try per block it
///     gives up), and a validator can make its own account ineligible (unstake) after
///     seeing the seed, which only ever removes it. Validators registered after the
///     challenge are never drawn for it (the draw only probes the set as it was).
///  3. Each committee member re-executes the step from the committed pre-state, fetched
///     from Swarm, and votes TrainerCorrect, TrainerWrong or DataUnavailable. Data
///     availability rule: a trainer must keep its log and checkpoints retrievable until
///     the dispute is resolved; a validator that cannot fetch them within the voting
///     period votes DataUnavailable, and that vote counts against the trainer.
///  4. `resolve`: a strict majority of the committee against the trainer (TrainerWrong +
///     DataUnavailable) slashes its stake; a strict majority for it pays the trainer the
///     reward and the challenger's bond. If the voting period ends without a majority, or
///     no committee was drawn within `votingPeriod` of the challenge, the committee failed
///     to act and neither party did: the trainer is paid and the bond returned (TimedOut).
///
/// Validator economics: `validatorRewardBps` of the loser's forfeit (the slashed trainer
/// stake or the challenger's bond) is shared equally by the committee members who voted
/// with the majority. A member who has not voted when the voting period ends loses
/// `absentPenaltyBps` of `minValidatorStake`, added to the same pool (a majority may
/// resolve earlier; members who had not voted yet then just get their seat back). On a
/// timeout the pool (penalties only) is shared by the members who did vote. Rounding dust,
/// and the whole pool when nobody is there to share it, goes to the side the outcome
/// favours. Members who voted with the minority get their seat back untouched.
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
        TimedOut,
        DataUnavailable
    }

    enum Verdict {
        None,
        TrainerCorrect,
        TrainerWrong,
        DataUnavailable
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
        uint32 step;
        /// When the challenge was made; a committee must be drawn by challengedAt + votingPeriod.
        uint40 challengedAt;
        /// Zero until the committee is drawn, then the end of its voting period.
        uint40 voteEnd;
        /// The block whose hash seeds the draw (challenge block + drawDelay, or a re-anchor).
        uint64 seedBlock;
        /// Validators [0, validatorsAtChallenge) are the ones the draw may pick.
        uint32 validatorsAtChallenge;
        uint8 votesTrainerCorrect;
        uint8 votesTrainerWrong;
        uint8 votesDataUnavailable;
        /// Leaf hash of the disputed record and of the previous one (zero for step 0).
        bytes32 recordHash;
        bytes32 prevRecordHash;
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
        uint8 drawDelay;
        uint16 validatorRewardBps;
        uint16 absentPenaltyBps;
    }

    uint16 private constant BPS = 10_000;
    /// How far back `blockhash` reaches.
    uint256 private constant BLOCKHASH_WINDOW = 256;

    uint96 public immutable minTrainerStake;
    uint96 public immutable minValidatorStake;
    uint88 public immutable minChallengeBond;
    uint40 public immutable votingPeriod;
    uint8 public immutable committeeSize;
    /// Blocks between a challenge and the block whose hash seeds its committee (>= 1).
    uint8 public immutable drawDelay;
    /// Share of the loser's forfeit paid to the majority voters, in basis points.
    uint16 public immutable validatorRewardBps;
    /// Share of `minValidatorStake` an absent committee member loses, in basis points.
    uint16 public immutable absentPenaltyBps;

    uint256 private _nextJobId = 1;
    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => Dispute) private _disputes;
    mapping(uint256 => mapping(address => Verdict)) public verdictOf;
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
    error NoPreviousStep(uint256 jobId);
    error DrawTooEarly(uint256 jobId, uint256 drawableAtBlock);
    error CommitteeAlreadyDrawn(uint256 jobId);
    error CommitteeNotDrawn(uint256 jobId);
    error InvalidVerdict();
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
        bytes prevRecord,
        bytes record,
        uint256 seedBlock
    );
    event CommitteeReanchored(uint256 indexed jobId, uint256 seedBlock);
    event CommitteeDrawn(uint256 indexed jobId, address[] committee, uint256 seedBlock, uint256 voteEnd);
    event DisputeVoted(uint256 indexed jobId, address indexed validator, Verdict verdict);
    event DisputeResolved(uint256 indexed jobId, Outcome outcome);
    event ValidatorRewarded(uint256 indexed jobId, address indexed validator, uint256 amount);
    event ValidatorPenalized(uint256 indexed jobId, address indexed validator, uint256 amount);
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
        if (
            params.committeeSize == 0 || params.votingPeriod == 0 || params.minChallengeBond == 0
                || params.drawDelay == 0 || params.validatorRewardBps > BPS || params.absentPenaltyBps > BPS
        ) {
            revert InvalidParams();
        }
        minTrainerStake = params.minTrainerStake;
        minValidatorStake = params.minValidatorStake;
        minChallengeBond = params.minChallengeBond;
        votingPeriod = params.votingPeriod;
        committeeSize = params.committeeSize;
        drawDelay = params.drawDelay;
        validatorRewardBps = params.validatorRewardBps;
        absentPenaltyBps = params.absentPenaltyBps;
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

    /// @notice Dispute step `step` of a submitted log. `record` is step record `step` and
    /// `proof` its Merkle path to the job's logRoot; `prevRecord`/`prevProof` are the same
    /// for step `step - 1` (both empty for step 0). Send at least `minChallengeBond`.
    function challenge(
        uint256 jobId,
        uint32 step,
        bytes calldata prevRecord,
        bytes32[] calldata prevProof,
        bytes calldata record,
        bytes32[] calldata proof
    ) external payable nonReentrant {
        uint256 seedBlock;
        {
            Job storage job = _challengeable(jobId, step);
            bytes32 recordHash = _provenLeaf(jobId, job.logRoot, step, record, proof);
            bytes32 prevRecordHash = _provenPrevLeaf(jobId, job.logRoot, step, prevRecord, prevProof);
            job.status = JobStatus.Disputed;
            seedBlock = _openDispute(jobId, step, recordHash, prevRecordHash);
        }
        emit JobChallenged(jobId, msg.sender, step, msg.value, prevRecord, record, seedBlock);
    }

    /// @notice Draw the committee of a dispute from the hash of its seed block; anyone may
    /// call once that block is mined. If the hash has left the 256-block window, the dispute
    /// re-anchors to a block `drawDelay` ahead instead (call again after it).
    function drawCommittee(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Disputed);
        Dispute storage dispute = _disputes[jobId];
        if (dispute.voteEnd != 0) revert CommitteeAlreadyDrawn(jobId);
        uint256 drawBy = uint256(dispute.challengedAt) + votingPeriod;
        if (block.timestamp > drawBy) revert VotingClosed(jobId);
        uint256 seedBlock = dispute.seedBlock;
        if (block.number <= seedBlock) revert DrawTooEarly(jobId, seedBlock + 1);
        if (block.number - seedBlock > BLOCKHASH_WINDOW) {
            uint64 next = uint64(block.number) + drawDelay;
            dispute.seedBlock = next;
            emit CommitteeReanchored(jobId, next);
            return;
        }
        bytes32 seed = keccak256(abi.encode(blockhash(seedBlock), jobId));
        address[] memory committee =
            _pickCommittee(seed, dispute.validatorsAtChallenge, job.trainer, job.requester, dispute.challenger);
        if (committee.length == 0) revert NoEligibleValidators(jobId);
        for (uint256 i = 0; i < committee.length; ++i) {
            _accounts[committee[i]].locked += minValidatorStake;
        }
        uint40 voteEnd = uint40(block.timestamp) + votingPeriod;
        dispute.voteEnd = voteEnd;
        dispute.committee = committee;
        emit CommitteeDrawn(jobId, committee, seedBlock, voteEnd);
    }

    /// @notice A committee member's verdict after re-executing the disputed step.
    function vote(uint256 jobId, Verdict verdict) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Disputed);
        if (verdict == Verdict.None) revert InvalidVerdict();
        Dispute storage dispute = _disputes[jobId];
        if (dispute.voteEnd == 0) revert CommitteeNotDrawn(jobId);
        if (block.timestamp > dispute.voteEnd) revert VotingClosed(jobId);
        if (!_inCommittee(dispute.committee, msg.sender)) revert NotCommitteeMember(jobId, msg.sender);
        if (verdictOf[jobId][msg.sender] != Verdict.None) revert AlreadyVoted(jobId, msg.sender);
        verdictOf[jobId][msg.sender] = verdict;
        if (verdict == Verdict.TrainerCorrect) {
            dispute.votesTrainerCorrect += 1;
        } else if (verdict == Verdict.TrainerWrong) {
            dispute.votesTrainerWrong += 1;
        } else {
            dispute.votesDataUnavailable += 1;
        }
        emit DisputeVoted(jobId, msg.sender, verdict);
    }

    /// @notice Settle a dispute: at once when a majority of the committee agrees,
    /// otherwise after the voting (or drawing) period (see the contract notice).
    function resolve(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Disputed);
        Dispute storage dispute = _disputes[jobId];
        Outcome outcome = _outcome(jobId, dispute);
        bool trainerLost = outcome == Outcome.ChallengerWon || outcome == Outcome.DataUnavailable;
        address trainer = job.trainer;
        address challenger = dispute.challenger;
        uint256 bond = dispute.bond;
        uint256 pool;
        if (trainerLost) {
            job.status = JobStatus.Slashed;
            uint256 slashed = _slash(trainer, job.reward);
            pool = slashed * validatorRewardBps / BPS;
            pendingWithdrawal[challenger] += slashed - pool + bond;
            pendingWithdrawal[job.requester] += job.reward;
            emit JobSlashed(jobId, trainer, slashed, challenger);
        } else {
            job.status = JobStatus.Finalized;
            _accounts[trainer].locked -= trainerStakeFor(job.reward);
            uint256 payout = job.reward;
            if (outcome == Outcome.TrainerWon) {
                pool = bond * validatorRewardBps / BPS;
                payout += bond - pool;
            } else {
                pendingWithdrawal[challenger] += bond;
            }
            pendingWithdrawal[trainer] += payout;
            emit JobFinalized(jobId, trainer, payout);
        }
        emit DisputeResolved(jobId, outcome);
        // Members are absent only once the voting period is over, not when a majority ends it early.
        uint256 penalty = block.timestamp > dispute.voteEnd ? uint256(minValidatorStake) * absentPenaltyBps / BPS : 0;
        _settleCommittee(jobId, dispute.committee, outcome, pool, penalty, trainerLost ? challenger : trainer);
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

    /// @notice The first block at which `drawCommittee(jobId)` can draw (0 when no draw is due).
    function drawableAt(uint256 jobId) external view returns (uint256) {
        Dispute storage dispute = _disputes[jobId];
        if (_jobs[jobId].status != JobStatus.Disputed || dispute.voteEnd != 0) return 0;
        return uint256(dispute.seedBlock) + 1;
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

    /// @dev The job, if the sender may challenge step `step` of it now with `msg.value`.
    function _challengeable(uint256 jobId, uint32 step) private view returns (Job storage job) {
        job = _job(jobId);
        _requireStatus(jobId, job.status, JobStatus.Submitted);
        if (block.timestamp > job.expiresAt) revert ChallengeWindowClosed(jobId, job.expiresAt);
        if (msg.sender == job.trainer) revert CannotChallengeOwnJob(jobId);
        if (msg.value < minChallengeBond) revert BondTooSmall(msg.value, minChallengeBond);
        if (msg.value > type(uint88).max) revert AmountTooLarge(msg.value, type(uint88).max);
        if (step >= job.steps) revert StepOutOfRange(step, job.steps);
    }

    /// @dev Record the dispute (the committee is drawn later); returns its seed block.
    function _openDispute(uint256 jobId, uint32 step, bytes32 recordHash, bytes32 prevRecordHash)
        private
        returns (uint64 seedBlock)
    {
        uint256 validators = _validators.length;
        if (validators == 0) revert NoEligibleValidators(jobId);
        seedBlock = uint64(block.number) + drawDelay;
        Dispute storage dispute = _disputes[jobId];
        dispute.challenger = msg.sender;
        dispute.bond = uint88(msg.value);
        dispute.step = step;
        dispute.challengedAt = uint40(block.timestamp);
        dispute.seedBlock = seedBlock;
        dispute.validatorsAtChallenge = uint32(validators);
        dispute.recordHash = recordHash;
        dispute.prevRecordHash = prevRecordHash;
    }

    /// @dev The leaf hash of record `index`, proven against `root`.
    function _provenLeaf(uint256 jobId, bytes32 root, uint256 index, bytes calldata record, bytes32[] calldata proof)
        private
        pure
        returns (bytes32 leaf)
    {
        leaf = _leaf(record);
        if (!_verify(leaf, index, proof, root)) revert InvalidProof(jobId, index);
    }

    /// @dev The leaf hash of the record before `step`, proven against `root`; zero for step 0,
    /// which has no previous record (its pre-state is the job's initial state).
    function _provenPrevLeaf(
        uint256 jobId,
        bytes32 root,
        uint256 step,
        bytes calldata prevRecord,
        bytes32[] calldata prevProof
    ) private pure returns (bytes32) {
        if (step == 0) {
            if (prevRecord.length != 0 || prevProof.length != 0) revert NoPreviousStep(jobId);
            return bytes32(0);
        }
        return _provenLeaf(jobId, root, step - 1, prevRecord, prevProof);
    }

    function _leaf(bytes calldata record) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x00), record));
    }

    /// @dev The outcome a resolve now would reach, or a revert if none is reached yet.
    function _outcome(uint256 jobId, Dispute storage dispute) private view returns (Outcome) {
        uint256 size = dispute.committee.length;
        if (size == 0) {
            uint256 drawBy = uint256(dispute.challengedAt) + votingPeriod;
            if (block.timestamp <= drawBy) revert VotingStillOpen(jobId, drawBy);
            return Outcome.TimedOut;
        }
        uint256 majority = size / 2 + 1;
        uint256 wrong = dispute.votesTrainerWrong;
        uint256 unavailable = dispute.votesDataUnavailable;
        if (wrong + unavailable >= majority) {
            return unavailable > wrong ? Outcome.DataUnavailable : Outcome.ChallengerWon;
        }
        if (dispute.votesTrainerCorrect >= majority) return Outcome.TrainerWon;
        if (block.timestamp <= dispute.voteEnd) revert VotingStillOpen(jobId, dispute.voteEnd);
        return Outcome.TimedOut;
    }

    /// @dev Free every seat, take `penalty` from each member who did not vote, and share
    /// `pool` plus the penalties among the members whose vote counts for `outcome`; dust, or
    /// the whole pool when nobody shares it, goes to `favoured`.
    function _settleCommittee(
        uint256 jobId,
        address[] storage committee,
        Outcome outcome,
        uint256 pool,
        uint256 penalty,
        address favoured
    ) private {
        uint256 size = committee.length;
        uint256 sharers;
        for (uint256 i = 0; i < size; ++i) {
            address member = committee[i];
            Account storage account = _accounts[member];
            account.locked -= minValidatorStake;
            Verdict verdict = verdictOf[jobId][member];
            if (verdict == Verdict.None) {
                if (penalty != 0) {
                    account.staked -= uint96(penalty);
                    pool += penalty;
                    emit ValidatorPenalized(jobId, member, penalty);
                }
            } else if (_sharesReward(verdict, outcome)) {
                ++sharers;
            }
        }
        uint256 share = sharers == 0 ? 0 : pool / sharers;
        if (share != 0) {
            for (uint256 i = 0; i < size; ++i) {
                address member = committee[i];
                if (!_sharesReward(verdictOf[jobId][member], outcome)) continue;
                pendingWithdrawal[member] += share;
                emit ValidatorRewarded(jobId, member, share);
            }
        }
        uint256 rest = pool - share * sharers;
        if (rest != 0) pendingWithdrawal[favoured] += rest;
    }

    function _sharesReward(Verdict verdict, Outcome outcome) private pure returns (bool) {
        if (verdict == Verdict.None) return false;
        if (outcome == Outcome.TimedOut) return true;
        if (outcome == Outcome.TrainerWon) return verdict == Verdict.TrainerCorrect;
        return verdict != Verdict.TrainerCorrect;
    }

    /// @dev Up to `committeeSize` distinct validators among the first `n`, none of them a
    /// party, each with `minValidatorStake` free: random probes first, then a sweep so that
    /// a small eligible set is still found.
    function _pickCommittee(bytes32 seed, uint256 n, address trainer, address requester, address challenger)
        private
        view
        returns (address[] memory committee)
    {
        uint256 k = committeeSize;
        committee = new address[](k);
        uint256 found = 0;
        uint256 probes = n == 0 ? 0 : 2 * k;
        for (uint256 attempt = 0; found < k && attempt < probes + n; ++attempt) {
            uint256 index = attempt < probes ? uint256(keccak256(abi.encode(seed, attempt))) % n : attempt - probes;
            address candidate = _validators[index];
            if (candidate == trainer || candidate == requester || candidate == challenger) continue;
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

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

interface ITrainingMarketPayouts {
    function stake() external payable;
    function unstake(uint96 amount) external;
    function withdraw() external;
}

/// @notice Test-only: a staker whose receive hook re-enters `withdraw`, to prove the
/// market's reentrancy guard (the inner call's revert bubbles out of the outer call).
contract MaliciousReceiver {
    ITrainingMarketPayouts public immutable market;
    uint256 public reentries;

    constructor(address market_) {
        market = ITrainingMarketPayouts(market_);
    }

    function stakeAndUnstake() external payable {
        market.stake{value: msg.value}();
        market.unstake(uint96(msg.value));
    }

    function attack() external {
        market.withdraw();
    }

    receive() external payable {
        reentries += 1;
        market.withdraw();
    }
}

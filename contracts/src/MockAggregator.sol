// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// A Chainlink price feed stand-in for tests: the AggregatorV3Interface reads
/// (`decimals`, `latestRoundData`) over an answer and update time the test sets.
contract MockAggregator {
    uint8 public decimals;
    int256 private answer;
    uint256 private updatedAt;
    uint80 private roundId;

    constructor(uint8 decimals_, int256 answer_) {
        decimals = decimals_;
        answer = answer_;
        updatedAt = block.timestamp;
        roundId = 1;
    }

    /// Publishes a new round with `answer_`, updated at `updatedAt_` (unix seconds).
    function setAnswer(int256 answer_, uint256 updatedAt_) external {
        answer = answer_;
        updatedAt = updatedAt_;
        roundId += 1;
    }

    function latestRoundData()
        external
        view
        returns (uint80, int256, uint256, uint256, uint80)
    {
        return (roundId, answer, updatedAt, updatedAt, roundId);
    }
}

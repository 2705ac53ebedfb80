// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// A contract that knows nothing of ERC-721: a safe transfer to it must fail.
contract NotAReceiver {
    function ping() external pure returns (uint256) {
        return 1;
    }
}

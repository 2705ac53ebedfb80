// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// A minimal contract wallet for the SIWE test: its owner's EOA signature over a hash
/// is the wallet's signature (EIP-1271), and the owner moves the wallet's funds.
contract Wallet1271 is IERC1271 {
    address public immutable owner;

    constructor(address owner_) payable {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecover(hash, signature);
        return err == ECDSA.RecoverError.NoError && signer == owner ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }

    /// The owner's call from the wallet (a deposit into escrow, say).
    function execute(address to, uint256 value, bytes calldata data) external returns (bytes memory) {
        require(msg.sender == owner, "not the owner");
        (bool ok, bytes memory out) = to.call{value: value}(data);
        require(ok, "the call failed");
        return out;
    }

    receive() external payable {}
}

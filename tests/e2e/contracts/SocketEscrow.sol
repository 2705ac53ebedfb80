// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ERC721Holder} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Holder.sol";

/// An escrow for any ERC-721, as a marketplace would hold listed tokens: a deposit is a
/// safe transfer in (OpenZeppelin's ERC721Holder accepts it), a withdrawal a safe
/// transfer back to the depositor.
contract SocketEscrow is ERC721Holder {
    mapping(address => mapping(uint256 => address)) public depositor;

    function onERC721Received(address operator, address from, uint256 tokenId, bytes memory data)
        public
        override
        returns (bytes4)
    {
        depositor[msg.sender][tokenId] = from;
        return super.onERC721Received(operator, from, tokenId, data);
    }

    function withdraw(IERC721 token, uint256 tokenId) external {
        require(depositor[address(token)][tokenId] == msg.sender, "SocketEscrow: not yours");
        delete depositor[address(token)][tokenId];
        token.safeTransferFrom(address(this), msg.sender, tokenId);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Enumerable} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Enumerable.sol";

/// OpenZeppelin's ERC-721, unchanged: the transfer cost sockets are measured against.
contract PlainNFT is ERC721 {
    constructor() ERC721("Plain", "PLN") {}

    function mint(address to, uint256 id) external {
        _mint(to, id);
    }
}

/// OpenZeppelin's ERC-721 with Enumerable, the same extensions sockets have.
contract EnumerableNFT is ERC721Enumerable {
    constructor() ERC721("Enumerable", "ENM") {}

    function mint(address to, uint256 id) external {
        _mint(to, id);
    }
}

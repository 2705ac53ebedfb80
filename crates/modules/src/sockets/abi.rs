//! The Sockets module's ABI: ERC-721 with ERC-165, Metadata and Enumerable, ERC-4907
//! rentals, ERC-5643 subscriptions, and EMC's own calls.

// `sol!` makes a constructor per event and call; some of these take eight fields.
#![allow(clippy::too_many_arguments)]

use alloy_sol_types::sol;

sol! {
    /// The ABI at `SOCKETS_ADDRESS`.
    #[sol(all_derives)]
    interface ISockets {
        /// A socket as `socket(id)` reports it.
        struct Socket {
            address owner;
            /// The computing node that serves it.
            bytes32 node;
            string app;
            /// The app's content hash, where it has one (zero otherwise).
            bytes32 appHash;
            /// 0 calls, 1 fuel, 2 tokens (as the node meters them), 3 seconds of compute.
            uint8 unit;
            uint64 credits;
            uint256 pricePerUnit;
            /// Wei held for the unused credits: `credits × pricePerUnit`.
            uint256 escrow;
            /// Unix seconds.
            uint64 expires;
            /// Wei per second of renewal; zero: not renewable.
            uint256 renewalPricePerSecond;
            /// The ERC-4907 user, zero when none or expired.
            address user;
            uint64 userExpires;
            /// Whether the user's rental was paid through `rent` (then protected).
            bool paidRental;
            /// A standing rental listing: wei per second, the longest rental.
            uint256 rentPricePerSecond;
            uint64 rentMaxSeconds;
        }

        /// A socket key's grant: the Tasks module's `Grant` tuple, signed over
        /// [`super::socket_grant_message`] (which names the socket).
        struct Grant {
            uint64 chainId;
            address router;
            uint64 nonce;
            uint64 expires;
            /// Most wei of the socket's credits all calls under this key may use.
            uint256 limit;
            bytes32 request;
        }

        /// A doubly signed call, the Tasks module's `Receipt` tuple.
        struct Receipt {
            Grant grant;
            bytes grantSignature;
            string app;
            bytes32 requestHash;
            bytes32 callId;
            bytes32 resultHash;
            bytes32 nodeId;
            uint8 unit;
            uint64 units;
            uint64 bytesOut;
            uint64 wallUs;
            uint64 maxUnits;
            bytes nodeSignature;
            uint256 maxCost;
        }

        /// A provider's standing offer.
        struct Offer {
            address provider;
            bytes32 node;
            string app;
            bytes32 appHash;
            uint8 unit;
            uint256 pricePerUnit;
            uint64 minUnits;
            uint64 maxUnits;
            /// Seconds a socket bought from it is valid.
            uint64 validFor;
            /// Units still for sale.
            uint64 capacity;
            /// Unix seconds; the offer lapses then.
            uint64 expires;
            uint256 renewalPricePerSecond;
        }

        // ERC-721
        event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
        event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
        event ApprovalForAll(address indexed owner, address indexed operator, bool approved);
        // ERC-4907
        event UpdateUser(uint256 indexed tokenId, address indexed user, uint64 expires);
        // ERC-5643
        event SubscriptionUpdate(uint256 indexed tokenId, uint64 expiration);
        // EMC
        event SocketMinted(uint256 indexed tokenId, bytes32 indexed node, string app, uint8 unit, uint256 pricePerUnit, uint64 expires);
        event Funded(uint256 indexed tokenId, address indexed payer, uint64 units, uint256 amount);
        event Offered(uint256 indexed offerId, bytes32 indexed node, address indexed provider, string app, uint8 unit, uint256 pricePerUnit, uint64 capacity, uint64 expires);
        event OfferWithdrawn(uint256 indexed offerId);
        event Refunded(uint256 indexed tokenId, address indexed holder, uint64 units, uint256 amount);
        event RentalListed(uint256 indexed tokenId, uint256 pricePerSecond, uint64 maxSeconds);
        event Rented(uint256 indexed tokenId, address indexed user, uint64 expires, uint256 paid);
        event RentReleased(uint256 indexed tokenId, address indexed to, uint256 amount);

        function balanceOf(address owner) external view returns (uint256);
        function ownerOf(uint256 tokenId) external view returns (address);
        function safeTransferFrom(address from, address to, uint256 tokenId, bytes data) external payable;
        function safeTransferFrom(address from, address to, uint256 tokenId) external payable;
        function transferFrom(address from, address to, uint256 tokenId) external payable;
        function approve(address approved, uint256 tokenId) external payable;
        function setApprovalForAll(address operator, bool approved) external;
        function getApproved(uint256 tokenId) external view returns (address);
        function isApprovedForAll(address owner, address operator) external view returns (bool);
        function supportsInterface(bytes4 interfaceId) external view returns (bool);
        function name() external view returns (string);
        function symbol() external view returns (string);
        function tokenURI(uint256 tokenId) external view returns (string);
        function totalSupply() external view returns (uint256);
        function tokenByIndex(uint256 index) external view returns (uint256);
        function tokenOfOwnerByIndex(address owner, uint256 index) external view returns (uint256);

        function setUser(uint256 tokenId, address user, uint64 expires) external;
        function userOf(uint256 tokenId) external view returns (address);
        function userExpires(uint256 tokenId) external view returns (uint256);

        function renewSubscription(uint256 tokenId, uint64 duration) external payable;
        function cancelSubscription(uint256 tokenId) external payable;
        function expiresAt(uint256 tokenId) external view returns (uint64);
        function isRenewable(uint256 tokenId) external view returns (bool);

        function mint(address to, bytes32 node, string app, bytes32 appHash, uint8 unit, uint256 pricePerUnit, uint64 validFor, uint256 renewalPricePerSecond) external returns (uint256 tokenId);
        function fund(uint256 tokenId, uint64 units) external payable;
        function offer(bytes32 node, string app, bytes32 appHash, uint8 unit, uint256 pricePerUnit, uint64 minUnits, uint64 maxUnits, uint64 validFor, uint64 capacity, uint64 expires, uint256 renewalPricePerSecond) external returns (uint256 offerId);
        function withdrawOffer(uint256 offerId) external;
        function buy(uint256 offerId, uint64 units) external payable returns (uint256 tokenId);
        /// The Market module's only: a socket for `to` with `units` credits whose
        /// escrow the Market has just paid in (the spot market's and leases' sockets).
        /// EIP-2981: what a sale of `tokenId` at `salePrice` owes its provider.
        function royaltyInfo(uint256 tokenId, uint256 salePrice) external view returns (address receiver, uint256 royaltyAmount);
        /// A node's owner sets the royalty on its sockets' resales, in basis points (at
        /// most 1,000: 10%).
        function setRoyalty(bytes32 node, uint16 bps) external;
        event RoyaltySet(bytes32 indexed node, uint16 bps);
        function issue(address to, bytes32 node, string app, uint8 unit, uint64 units, uint256 pricePerUnit, uint64 validFor) external returns (uint256 tokenId);
        function listRental(uint256 tokenId, uint256 pricePerSecond, uint64 maxSeconds) external;
        function rent(uint256 tokenId, uint64 duration) external payable;
        function releaseRent(uint256 tokenId) external returns (uint256 released);
        function refund(uint256 tokenId) external returns (uint256 refunded);
        function socket(uint256 tokenId) external view returns (Socket);
        function offerInfo(uint256 offerId) external view returns (Offer);
        function offerCount() external view returns (uint256);

        /// Settles served calls against their sockets' credits: `receipts[i]` was paid
        /// from socket `sockets[i]`.
        function settle(uint256[] sockets, Receipt[] receipts) external returns (uint256 settled, uint256 charged);
        /// Why each receipt would be refused if `router` settled the batch now ("" for
        /// one that would settle). Writes nothing.
        function check(address router, uint256[] sockets, Receipt[] receipts) external view returns (string[] reasons);
        function isSettled(bytes32 receiptId) external view returns (bool);
        /// What a socket key (by its id) has spent of its limit.
        function spent(bytes32 keyId) external view returns (uint256);

        /// The Pools module's only: draws `amount` wei of socket `tokenId`'s credits
        /// for a job of pool `poolId` that `router` settles, under the holder's socket
        /// key, rounded up to whole credits; the holder and the wei drawn.
        function drawForPool(uint256 tokenId, uint64 poolId, address router, Grant grant, bytes grantSignature, bytes32 drawId, bytes32 requestHash, uint256 amount) external returns (address holder, uint256 drawn);
        event DrawnForPool(bytes32 indexed receiptId, uint256 indexed tokenId, uint64 indexed poolId, uint64 units, uint256 amount);

        event Settled(bytes32 indexed receiptId, uint256 indexed tokenId, bytes32 indexed nodeId, address router, uint64 units, uint256 nodeAmount, uint256 routerFee);
        event Rejected(bytes32 indexed receiptId, uint256 indexed tokenId, string reason);
    }

    /// What ERC-721 calls on a contract that receives a token by `safeTransferFrom`.
    interface IERC721Receiver {
        function onERC721Received(address operator, address from, uint256 tokenId, bytes data) external returns (bytes4);
    }
}

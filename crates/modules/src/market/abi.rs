//! The Market module's ABI: the spot call auction, buyers' orders with providers'
//! bids (a reverse auction that ends in a lease), and resale of sockets.

// `sol!` makes a constructor per event and call; some of these take eight fields.
#![allow(clippy::too_many_arguments)]

use alloy_sol_types::sol;

sol! {
    /// The ABI at `MARKET_ADDRESS`.
    #[sol(all_derives)]
    interface IMarket {
        /// One market's last clearing.
        struct Quote {
            string app;
            uint8 unit;
            /// Wei per unit at the last clearing (zero: never cleared).
            uint256 price;
            uint64 height;
            /// Units matched at that clearing, and over the market's life.
            uint64 volume;
            uint64 totalVolume;
        }

        /// A spot order as `spotOrder(id)` reports it.
        struct SpotOrder {
            address owner;
            /// True for an ask (a provider selling), false for a bid.
            bool ask;
            bytes32 market;
            /// The ask's node (zero for a bid).
            bytes32 node;
            uint64 units;
            uint256 limitPerUnit;
            /// The block it was submitted in and cleared at the end of.
            uint64 height;
            /// Units filled at the clearing (zero before it).
            uint64 filled;
        }

        /// A buyer's order as `orderInfo(id)` reports it.
        struct Order {
            address buyer;
            string app;
            uint8 unit;
            uint64 units;
            uint256 maxPricePerUnit;
            uint64 deadline;
            /// The lease's validity, seconds.
            uint64 validFor;
            /// The least E (the node owner's proof-of-computing score) a bidder has.
            uint256 minScore;
            /// 0 open, 1 leased, 2 unfilled (its deposit refunded).
            uint8 state;
            uint256[] bids;
            uint256 winner;
            /// The lease's socket.
            uint256 tokenId;
        }

        /// A provider's bid as `bidInfo(id)` reports it.
        struct Bid {
            uint256 orderId;
            address provider;
            bytes32 node;
            uint256 pricePerUnit;
            uint256 bond;
            /// 0 open, 1 won (bond held), 2 lost, 3 released, 4 slashed.
            uint8 state;
        }

        /// A router's signed word that a lease's node failed a call: kind 1 refused,
        /// 2 timed out; signed with EIP-191 over `failureMessage`.
        struct FailureReport {
            uint256 bidId;
            bytes32 node;
            uint64 at;
            uint8 kind;
            bytes32 requestHash;
            bytes signature;
        }

        /// A resale listing as `listingInfo(id)` reports it.
        struct Listing {
            address seller;
            uint256 tokenId;
            bool auction;
            /// The fixed price, or the auction's reserve.
            uint256 price;
            uint64 ends;
            /// 0 active, 1 sold, 2 cancelled, 3 void.
            uint8 state;
            address highBidder;
            uint256 highBid;
        }

        event Listed(uint256 indexed listingId, uint256 indexed tokenId, address indexed seller, bool auction, uint256 price, uint64 ends);
        event AuctionBid(uint256 indexed listingId, address indexed bidder, uint256 amount, uint64 ends);
        /// A resale: the royalty to the provider and the fee (burnt) out of the price.
        event Sold(uint256 indexed listingId, uint256 indexed tokenId, address indexed seller, address buyer, uint256 price, uint256 royalty, address royaltyTo, uint256 fee);
        event ListingClosed(uint256 indexed listingId, string reason);

        event OrderPlaced(uint256 indexed orderId, address indexed buyer, string app, uint8 unit, uint64 units, uint256 maxPricePerUnit, uint64 deadline);
        event BidPlaced(uint256 indexed orderId, uint256 indexed bidId, bytes32 indexed node, address provider, uint256 pricePerUnit, uint256 bond);
        event Leased(uint256 indexed orderId, uint256 indexed bidId, uint256 indexed tokenId, bytes32 node, uint256 pricePerUnit, uint64 units);
        event OrderUnfilled(uint256 indexed orderId, uint256 refunded);
        event BondReleased(uint256 indexed bidId, address indexed to, uint256 amount);
        event BondSlashed(uint256 indexed bidId, address indexed to, uint256 amount, uint64 routers);

        event SpotBid(uint256 indexed orderId, bytes32 indexed market, address indexed buyer, uint64 units, uint256 limitPerUnit);
        event SpotAsk(uint256 indexed orderId, bytes32 indexed market, bytes32 indexed node, address provider, uint64 units, uint256 limitPerUnit);
        /// One per market and block with orders: the uniform price and the volume.
        event Cleared(bytes32 indexed market, uint64 indexed height, string app, uint8 unit, uint256 price, uint64 volume);
        /// One per (bid, ask) pair filled: the buyer's new socket.
        event SpotFilled(bytes32 indexed market, uint256 indexed bidId, uint256 indexed askId, address buyer, bytes32 node, uint64 units, uint256 price, uint256 tokenId);
        /// What a bid's deposit returns: the unfilled units and the gap to its limit.
        event SpotRefunded(uint256 indexed orderId, address indexed to, uint256 amount);

        /// Bids for `units` of `app`'s `unit` in this block's auction, at most
        /// `limitPerUnit` each; send exactly `units × limitPerUnit`.
        function spotBid(string app, uint8 unit, uint64 units, uint256 limitPerUnit) external payable returns (uint256 orderId);
        /// Asks to sell `units` of `app`'s `unit` served by `node` (the caller's) in this
        /// block's auction, at no less than `limitPerUnit`.
        function spotAsk(bytes32 node, string app, uint8 unit, uint64 units, uint256 limitPerUnit) external returns (uint256 orderId);
        /// The end-of-block call (the chain's own caller only): clears every market.
        function clearBlock() external;
        /// A buyer's order, with a deposit of exactly `units × maxPricePerUnit`.
        function placeOrder(string app, uint8 unit, uint64 units, uint256 maxPricePerUnit, uint64 deadline, uint64 validFor, uint256 minScore, uint8 maxBids) external payable returns (uint256 orderId);
        /// A provider's bid for its node, with exactly its bond.
        function bid(uint256 orderId, bytes32 node, uint256 pricePerUnit) external payable returns (uint256 bidId);
        /// The buyer ends its order early; the rule picks the winner.
        function accept(uint256 orderId) external;
        /// Anyone ends an order past its deadline.
        function close(uint256 orderId) external;
        function reportFailure(uint256 bidId, FailureReport[] reports) external;
        function releaseBond(uint256 bidId) external;
        function failureMessage(FailureReport report) external view returns (bytes32);
        function orderInfo(uint256 orderId) external view returns (Order);
        function bidInfo(uint256 bidId) external view returns (Bid);
        function orderCount() external view returns (uint256);
        /// The lease a socket is, as its winning bid's id (zero: not a lease).
        /// The bond a bid on `orderId` at `pricePerUnit` must send.
        function bondOf(uint256 orderId, uint256 pricePerUnit) external view returns (uint256);
        function leaseOf(uint256 tokenId) external view returns (uint256 bidId);
        /// What the market knows of a node: its owner, the owner's E, the leases it
        /// won and the failures evidenced against it.
        function nodeRecord(bytes32 node) external view returns (address owner, uint256 score, uint64 leases, uint64 failures);
        /// Lists a socket the caller holds (the Market approved for it) at `price`.
        function list(uint256 tokenId, uint256 price, uint64 ends) external returns (uint256 listingId);
        /// Lists it in an English auction with a reserve.
        function auction(uint256 tokenId, uint256 reservePrice, uint64 ends) external returns (uint256 listingId);
        function buyListing(uint256 listingId) external payable;
        function bidAuction(uint256 listingId) external payable;
        function settleAuction(uint256 listingId) external;
        function cancelListing(uint256 listingId) external;
        function listingInfo(uint256 listingId) external view returns (Listing);
        function listingCount() external view returns (uint256);
        function marketOf(string app, uint8 unit) external pure returns (bytes32);
        function quote(bytes32 market) external view returns (Quote);
        function markets() external view returns (bytes32[]);
        function spotOrder(uint256 orderId) external view returns (SpotOrder);
        function spotOrderCount() external view returns (uint256);
    }
}

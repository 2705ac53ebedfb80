// The computing market with ethers.js v6: two providers, an offer bought, a buyer's
// order won by the cheaper bid, a spot auction of several buyers and sellers in one
// block clearing at the price this test computes on its own, a resale at a fixed
// price and one by auction with the provider's royalty, and a winner that fails to
// serve losing its bond on two staked routers' reports (a buyer alone cannot take
// it). Every account's balance and every socket's credits are checked to the wei.
//
// EMC_RPC_URL names an `emc node --dev` with blocks of two seconds, so a block's
// orders can be sent together (the Rust harness in bin/emc/tests/ethers_e2e.rs starts
// one).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { devWallet, fee, registerNode } from "./devchain.mjs";

const RPC = process.env.EMC_RPC_URL || "http://127.0.0.1:8545";
const MARKET = "0x0000000000000000000000000000000000001006";
const SOCKETS = "0x0000000000000000000000000000000000001005";
const STAKING = "0x0000000000000000000000000000000000001001";
const provider = new ethers.JsonRpcProvider(RPC, undefined, { polling: true, pollingInterval: 200, cacheTimeout: -1 });
after(() => provider.destroy());
const [buyer, buyer2, provA, provB, r1, r2, bidder] = [1, 2, 4, 5, 6, 7, 8].map((i) => devWallet(i, provider));

const market = new ethers.Contract(
  MARKET,
  [
    "event SpotBid(uint256 indexed orderId, bytes32 indexed market, address indexed buyer, uint64 units, uint256 limitPerUnit)",
    "event SpotAsk(uint256 indexed orderId, bytes32 indexed market, bytes32 indexed node, address provider, uint64 units, uint256 limitPerUnit)",
    "event Cleared(bytes32 indexed market, uint64 indexed height, string app, uint8 unit, uint256 price, uint64 volume)",
    "event SpotFilled(bytes32 indexed market, uint256 indexed bidId, uint256 indexed askId, address buyer, bytes32 node, uint64 units, uint256 price, uint256 tokenId)",
    "event SpotRefunded(uint256 indexed orderId, address indexed to, uint256 amount)",
    "event OrderPlaced(uint256 indexed orderId, address indexed buyer, string app, uint8 unit, uint64 units, uint256 maxPricePerUnit, uint64 deadline)",
    "event BidPlaced(uint256 indexed orderId, uint256 indexed bidId, bytes32 indexed node, address provider, uint256 pricePerUnit, uint256 bond)",
    "event Leased(uint256 indexed orderId, uint256 indexed bidId, uint256 indexed tokenId, bytes32 node, uint256 pricePerUnit, uint64 units)",
    "event Listed(uint256 indexed listingId, uint256 indexed tokenId, address indexed seller, bool auction, uint256 price, uint64 ends)",
    "event Sold(uint256 indexed listingId, uint256 indexed tokenId, address indexed seller, address buyer, uint256 price, uint256 royalty, address royaltyTo, uint256 fee)",
    "event BondSlashed(uint256 indexed bidId, address indexed to, uint256 amount, uint64 routers)",
    "function spotBid(string app, uint8 unit, uint64 units, uint256 limitPerUnit) payable returns (uint256)",
    "function spotAsk(bytes32 node, string app, uint8 unit, uint64 units, uint256 limitPerUnit) returns (uint256)",
    "function placeOrder(string app, uint8 unit, uint64 units, uint256 maxPricePerUnit, uint64 deadline, uint64 validFor, uint256 minScore, uint8 maxBids) payable returns (uint256)",
    "function bid(uint256 orderId, bytes32 node, uint256 pricePerUnit) payable returns (uint256)",
    "function bondOf(uint256 orderId, uint256 pricePerUnit) view returns (uint256)",
    "function accept(uint256 orderId)",
    "function orderInfo(uint256 orderId) view returns (tuple(address buyer, string app, uint8 unit, uint64 units, uint256 maxPricePerUnit, uint64 deadline, uint64 validFor, uint256 minScore, uint8 state, uint256[] bids, uint256 winner, uint256 tokenId))",
    "function list(uint256 tokenId, uint256 price, uint64 ends) returns (uint256)",
    "function auction(uint256 tokenId, uint256 reservePrice, uint64 ends) returns (uint256)",
    "function buyListing(uint256 listingId) payable",
    "function bidAuction(uint256 listingId) payable",
    "function settleAuction(uint256 listingId)",
    "function reportFailure(uint256 bidId, tuple(uint256 bidId, bytes32 node, uint64 at, uint8 kind, bytes32 requestHash, bytes signature)[] reports)",
    "function failureMessage(tuple(uint256 bidId, bytes32 node, uint64 at, uint8 kind, bytes32 requestHash, bytes signature) report) view returns (bytes32)",
    "function quote(bytes32 market) view returns (tuple(string app, uint8 unit, uint256 price, uint64 height, uint64 volume, uint64 totalVolume))",
    "function marketOf(string app, uint8 unit) pure returns (bytes32)",
  ],
  provider,
);
const sockets = new ethers.Contract(
  SOCKETS,
  [
    "event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)",
    "function offer(bytes32 node, string app, bytes32 appHash, uint8 unit, uint256 pricePerUnit, uint64 minUnits, uint64 maxUnits, uint64 validFor, uint64 capacity, uint64 expires, uint256 renewalPricePerSecond) returns (uint256)",
    "function offerCount() view returns (uint256)",
    "function buy(uint256 offerId, uint64 units) payable returns (uint256)",
    "function approve(address to, uint256 tokenId)",
    "function ownerOf(uint256 tokenId) view returns (address)",
    "function setRoyalty(bytes32 node, uint16 bps)",
    "function royaltyInfo(uint256 tokenId, uint256 salePrice) view returns (address, uint256)",
    "function socket(uint256 tokenId) view returns (tuple(address owner, bytes32 node, string app, bytes32 appHash, uint8 unit, uint64 credits, uint256 pricePerUnit, uint256 escrow, uint64 expires, uint256 renewalPricePerSecond, address user, uint64 userExpires, bool paidRental, uint256 rentPricePerSecond, uint64 rentMaxSeconds))",
  ],
  provider,
);
const staking = new ethers.Contract(STAKING, ["function stake(uint8 role) payable"], provider);

// The ledger: what every account should hold, from what it sent and what the rules
// say it gets back.
const accounts = [buyer, buyer2, provA, provB, r1, r2, bidder];
const expected = new Map();
const credit = (w, wei) => expected.set(w.address, expected.get(w.address) + BigInt(wei));
async function send(wallet, contract, method, args = [], value = 0n) {
  const rc = await (await contract.connect(wallet)[method](...args, { value })).wait();
  assert.equal(rc.status, 1, method);
  credit(wallet, -(fee(rc) + value));
  return rc;
}
const events = (rc, c, name) => rc.logs.map((l) => { try { return c.interface.parseLog(l); } catch { return null; } }).filter((e) => e && e.name === name);
const now = async () => (await provider.getBlock("latest")).timestamp;
const state = {};

test("two providers, an offer bought", async () => {
  for (const w of accounts) expected.set(w.address, await provider.getBalance(w.address));
  state.sockets0 = await provider.getBalance(SOCKETS);
  state.market0 = await provider.getBalance(MARKET);
  for (const [name, w] of [["A", provA], ["B", provB]]) {
    const { node, rc } = await registerNode(provider, w);
    credit(w, -fee(rc));
    state[name] = node;
  }
  await send(provA, sockets, "offer", [state.A, "echo", ethers.ZeroHash, 0, 100n, 1, 10, 3_600, 50, (await now()) + 3_600, 0]);
  const offer = await sockets.offerCount();
  const rc = await send(buyer, sockets, "buy", [offer, 5], 500n);
  state.s1 = events(rc, sockets, "Transfer")[0].args.tokenId;
  const s = await sockets.socket(state.s1);
  assert.deepEqual([s.owner, s.node, s.credits, s.escrow], [buyer.address, state.A, 5n, 500n]);
});

test("a buyer's order is won by the cheaper bid, by rule, and leased as a socket", async () => {
  let rc = await send(buyer, market, "placeOrder", ["echo", 0, 10, 50n, (await now()) + 600, 3_600, 0, 4], 500n);
  const order = events(rc, market, "OrderPlaced")[0].args.orderId;
  const bondB = await market.bondOf(order, 40n);
  const bondA = await market.bondOf(order, 30n);
  assert.deepEqual([bondB, bondA], [40n, 30n], "10% of the bid's value");
  await send(provB, market, "bid", [order, state.B, 40n], bondB);
  rc = await send(provA, market, "bid", [order, state.A, 30n], bondA);
  const bidA = events(rc, market, "BidPlaced")[0].args.bidId;
  // Above the order's maximum: refused with the reason, nothing moves.
  await assert.rejects(market.connect(provB).bid(order, state.B, 51n, { value: 51n }), /at most the order's 50 wei/);
  rc = await send(buyer, market, "accept", [order]);
  const lease = events(rc, market, "Leased")[0].args;
  assert.equal(lease.bidId, bidA);
  assert.equal(lease.node, state.A);
  state.s2 = lease.tokenId;
  credit(buyer, 500n - 300n); // the deposit less the winning price
  credit(provB, bondB); // the loser's bond back; the winner's stays for the lease
  state.heldBond = bondA;
  const s = await sockets.socket(state.s2);
  assert.deepEqual([s.owner, s.credits, s.pricePerUnit, s.escrow], [buyer.address, 10n, 30n, 300n]);
  assert.equal((await market.orderInfo(order)).state, 1n);
});

// The clearing rule, computed here on its own: most volume, then least imbalance,
// then the lower median of the prices left.
function clearingPrice(bids, asks) {
  const prices = [...new Set([...bids, ...asks].map((o) => o.limit))].sort((a, b) => (a < b ? -1 : 1));
  const scored = prices.map((p) => {
    const d = bids.filter((b) => b.limit >= p).reduce((s, b) => s + b.units, 0n);
    const s = asks.filter((a) => a.limit <= p).reduce((t, a) => t + a.units, 0n);
    return { p, v: d < s ? d : s, gap: d > s ? d - s : s - d };
  });
  const v = scored.reduce((m, c) => (c.v > m ? c.v : m), 0n);
  const least = scored.filter((c) => c.v === v).reduce((m, c) => (c.gap < m ? c.gap : m), 1n << 255n);
  const best = scored.filter((c) => c.v === v && c.gap === least).map((c) => c.p);
  return { price: best[Math.floor((best.length - 1) / 2)], volume: v };
}

test("a spot auction of several buyers and sellers in one block clears at one price", async () => {
  const bids = [{ w: buyer, units: 3n, limit: 12n }, { w: buyer2, units: 4n, limit: 10n }, { w: bidder, units: 2n, limit: 11n }];
  const asks = [{ w: provA, node: state.A, units: 2n, limit: 9n }, { w: provB, node: state.B, units: 4n, limit: 11n }];
  const want = clearingPrice(bids, asks);
  // Right after a block, so the five orders share the next one.
  const start = await provider.getBlockNumber();
  while ((await provider.getBlockNumber()) === start) await new Promise((r) => setTimeout(r, 100));
  const sent = await Promise.all([
    ...bids.map((b) => market.connect(b.w).spotBid("echo", 0, b.units, b.limit, { value: b.units * b.limit })),
    ...asks.map((a) => market.connect(a.w).spotAsk(a.node, "echo", 0, a.units, a.limit)),
  ]);
  const rcs = await Promise.all(sent.map((t) => t.wait()));
  const height = rcs[0].blockNumber;
  assert.ok(rcs.every((rc) => rc.blockNumber === height && rc.status === 1), "one block took all five orders");
  bids.forEach((b, i) => credit(b.w, -(fee(rcs[i]) + b.units * b.limit)));
  asks.forEach((a, i) => credit(a.w, -fee(rcs[bids.length + i])));
  // The clearing's logs, from the block's end.
  const logs = (await provider.getLogs({ address: MARKET, fromBlock: height, toBlock: height })).map((l) => market.interface.parseLog(l));
  const cleared = logs.find((e) => e.name === "Cleared");
  assert.equal(cleared.args.price, want.price);
  assert.equal(cleared.args.volume, want.volume);
  const fills = logs.filter((e) => e.name === "SpotFilled");
  assert.equal(fills.reduce((s, f) => s + f.args.units, 0n), want.volume);
  // Each buyer pays the one price for what it got; the rest of its deposit returns.
  for (const b of bids) {
    const got = fills.filter((f) => f.args.buyer === b.w.address).reduce((s, f) => s + f.args.units, 0n);
    credit(b.w, b.units * b.limit - got * want.price);
  }
  state.spot = fills.map((f) => ({ id: f.args.tokenId, units: f.args.units }));
  state.spotPaid = want.volume * want.price;
  const q = await market.quote(await market.marketOf("echo", 0));
  assert.deepEqual([q.price, q.height], [want.price, BigInt(height)]);
});

test("a resale at a fixed price pays the provider's royalty and burns the fee", async () => {
  await send(provA, sockets, "setRoyalty", [state.A, 500]);
  await send(buyer, sockets, "approve", [MARKET, state.s1]);
  let rc = await send(buyer, market, "list", [state.s1, 1_000n, (await now()) + 3_600]);
  const listing = events(rc, market, "Listed")[0].args.listingId;
  rc = await send(buyer2, market, "buyListing", [listing], 1_000n);
  const sold = events(rc, market, "Sold")[0].args;
  assert.deepEqual([sold.royalty, sold.royaltyTo, sold.fee], [50n, provA.address, 10n]);
  credit(provA, 50n);
  credit(buyer, 940n);
  assert.equal(await sockets.ownerOf(state.s1), buyer2.address);
});

test("an English auction refunds the outbid bidder and settles to the highest", async () => {
  await send(buyer2, sockets, "approve", [MARKET, state.s1]);
  // Long enough that the two bids below are mined before the end on a loaded machine
  // (a full CI run once took more than 8 s for them, and the second bid reverted).
  const ends = (await now()) + 20;
  let rc = await send(buyer2, market, "auction", [state.s1, 500n, ends]);
  const listing = events(rc, market, "Listed")[0].args.listingId;
  await assert.rejects(market.connect(bidder).bidAuction(listing, { value: 499n }), /at least 500 wei/);
  await send(bidder, market, "bidAuction", [listing], 600n);
  await send(buyer, market, "bidAuction", [listing], 700n);
  credit(bidder, 600n); // outbid: refunded at once
  while ((await now()) < ends) await new Promise((r) => setTimeout(r, 250));
  rc = await send(bidder, market, "settleAuction", [listing]);
  const sold = events(rc, market, "Sold")[0].args;
  assert.deepEqual([sold.price, sold.royalty, sold.fee], [700n, 35n, 7n]);
  credit(provA, 35n);
  credit(buyer2, 700n - 35n - 7n);
  assert.equal(await sockets.ownerOf(state.s1), buyer.address);
});

test("a winner that fails to serve loses its bond on two staked routers' reports, not on the buyer's", async () => {
  let rc = await send(buyer2, market, "placeOrder", ["echo", 0, 5, 20n, (await now()) + 600, 3_600, 0, 2], 100n);
  const order = events(rc, market, "OrderPlaced")[0].args.orderId;
  const bond = await market.bondOf(order, 15n);
  rc = await send(provB, market, "bid", [order, state.B, 15n], bond);
  const bid = events(rc, market, "BidPlaced")[0].args.bidId;
  rc = await send(buyer2, market, "accept", [order]);
  state.s4 = events(rc, market, "Leased")[0].args.tokenId;
  credit(buyer2, 100n - 75n);
  const at = BigInt(await now());
  const report = async (w) => {
    const r = { bidId: bid, node: state.B, at, kind: 2, requestHash: ethers.hexlify(ethers.randomBytes(32)), signature: "0x" };
    const digest = await market.failureMessage(r);
    return { ...r, signature: await w.signMessage(ethers.getBytes(digest)) };
  };
  for (const r of [r1, r2]) await send(r, staking, "stake", [1], ethers.parseEther("10"));
  // The buyer alone: its own signatures are no router's.
  await assert.rejects(market.connect(buyer2).reportFailure(bid, [await report(buyer2), await report(bidder)]), /is not a staked router/);
  // One router, twice: not enough.
  await assert.rejects(market.connect(buyer2).reportFailure(bid, [await report(r1), await report(r1)]), /from 2 staked routers, not 1/);
  rc = await send(buyer2, market, "reportFailure", [bid, [await report(r1), await report(r2)]]);
  const slashed = events(rc, market, "BondSlashed")[0].args;
  assert.deepEqual([slashed.to, slashed.amount, slashed.routers], [buyer2.address, bond, 2n]);
  credit(buyer2, bond);
});

test("every balance and every socket's credits add up to the wei", async () => {
  for (const w of accounts) assert.equal(await provider.getBalance(w.address), expected.get(w.address), w.address);
  const credits = async (id) => (await sockets.socket(id)).credits;
  assert.equal(await credits(state.s1), 5n);
  assert.equal(await credits(state.s2), 10n);
  assert.equal(await credits(state.s4), 5n);
  for (const s of state.spot) assert.equal(await credits(s.id), s.units);
  // The sockets hold every credit's escrow; the market only the running lease's bond.
  assert.equal(await provider.getBalance(SOCKETS), state.sockets0 + 500n + 300n + state.spotPaid + 75n);
  assert.equal(await provider.getBalance(MARKET), state.market0 + state.heldBond);
});

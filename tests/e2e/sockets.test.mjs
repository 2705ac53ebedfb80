// Computing sockets with stock Ethereum tools: ethers.js v6 with the standard ERC-721
// ABI, and contracts compiled by solc from OpenZeppelin's npm package. A socket is
// minted and bought, moved with safeTransferFrom into an ERC721Holder-based escrow and
// out again, refused by a contract that is not a receiver, moved by an approved
// address and an operator, rented out (the owner cannot cut the rental short), sold
// during the rental, and refunded after it expires; every balance adds up to the wei.
// Its transfer's gas is measured against OpenZeppelin's ERC-721 on the same chain.
//
// EMC_RPC_URL names an `emc node --dev --socket-settle-window 2` (the Rust harness in
// bin/emc/tests/ethers_e2e.rs starts one).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ethers } from "ethers";
import { compile } from "./compile.mjs";
import { fee, registerNode as registerDevNode } from "./devchain.mjs";

const RPC = process.env.EMC_RPC_URL || "http://127.0.0.1:8545";
const SOCKETS = "0x0000000000000000000000000000000000001005";
// Hardhat/Anvil development keys 0 to 3: the node funds them in --dev.
const KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];
const provider = new ethers.JsonRpcProvider(RPC, undefined, { polling: true, pollingInterval: 200, cacheTimeout: -1 });
const [provider0, buyer, renter, other] = KEYS.map((k) => new ethers.Wallet(k, provider));
after(() => provider.destroy());

// The standard ERC-721 ABI (with Metadata and Enumerable), as any wallet or market has it.
const ERC721 = [
  "event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)",
  "event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId)",
  "event ApprovalForAll(address indexed owner, address indexed operator, bool approved)",
  "function balanceOf(address owner) view returns (uint256)",
  "function ownerOf(uint256 tokenId) view returns (address)",
  "function safeTransferFrom(address from, address to, uint256 tokenId)",
  "function safeTransferFrom(address from, address to, uint256 tokenId, bytes data)",
  "function transferFrom(address from, address to, uint256 tokenId)",
  "function approve(address to, uint256 tokenId)",
  "function setApprovalForAll(address operator, bool approved)",
  "function getApproved(uint256 tokenId) view returns (address)",
  "function isApprovedForAll(address owner, address operator) view returns (bool)",
  "function supportsInterface(bytes4 interfaceId) view returns (bool)",
  "function name() view returns (string)",
  "function symbol() view returns (string)",
  "function tokenURI(uint256 tokenId) view returns (string)",
  "function totalSupply() view returns (uint256)",
  "function tokenByIndex(uint256 index) view returns (uint256)",
  "function tokenOfOwnerByIndex(address owner, uint256 index) view returns (uint256)",
];
// What sockets add: ERC-4907, ERC-5643 and EMC's calls.
const SOCKET = [
  "event UpdateUser(uint256 indexed tokenId, address indexed user, uint64 expires)",
  "event RentReleased(uint256 indexed tokenId, address indexed to, uint256 amount)",
  "function setUser(uint256 tokenId, address user, uint64 expires)",
  "function userOf(uint256 tokenId) view returns (address)",
  "function userExpires(uint256 tokenId) view returns (uint256)",
  "function cancelSubscription(uint256 tokenId) payable",
  "function expiresAt(uint256 tokenId) view returns (uint64)",
  "function offer(bytes32 node, string app, bytes32 appHash, uint8 unit, uint256 pricePerUnit, uint64 minUnits, uint64 maxUnits, uint64 validFor, uint64 capacity, uint64 expires, uint256 renewalPricePerSecond) returns (uint256)",
  "function buy(uint256 offerId, uint64 units) payable returns (uint256)",
  "function mint(address to, bytes32 node, string app, bytes32 appHash, uint8 unit, uint256 pricePerUnit, uint64 validFor, uint256 renewalPricePerSecond) returns (uint256)",
  "function offerCount() view returns (uint256)",
  "function listRental(uint256 tokenId, uint256 pricePerSecond, uint64 maxSeconds)",
  "function rent(uint256 tokenId, uint64 duration) payable",
  "function releaseRent(uint256 tokenId) returns (uint256)",
  "function refund(uint256 tokenId) returns (uint256)",
  "function socket(uint256 tokenId) view returns (tuple(address owner, bytes32 node, string app, bytes32 appHash, uint8 unit, uint64 credits, uint256 pricePerUnit, uint256 escrow, uint64 expires, uint256 renewalPricePerSecond, address user, uint64 userExpires, bool paidRental, uint256 rentPricePerSecond, uint64 rentMaxSeconds))",
];
const sockets = new ethers.Contract(SOCKETS, [...ERC721, ...SOCKET], provider);
const PRICE = 1_000_000n;

async function send(wallet, method, ...args) {
  const tx = await sockets.connect(wallet)[method](...args);
  const rc = await tx.wait();
  assert.equal(rc.status, 1, method);
  return rc;
}
const mintedId = (rc) =>
  rc.logs.map((l) => sockets.interface.parseLog(l)).find((e) => e && e.name === "Transfer" && e.args.from === ethers.ZeroAddress).args.tokenId;

// A computing node for `owner` (see devchain.mjs).
const registerNode = async (owner) => (await registerDevNode(provider, owner)).node;

async function deploy(name, file, wallet) {
  const { abi, bytecode } = compile(name, file);
  const c = await new ethers.ContractFactory(abi, bytecode, wallet).deploy();
  await c.waitForDeployment();
  return c;
}

async function buySocket(offerId, units, wallet = buyer) {
  const rc = await send(wallet, "buy", offerId, units, { value: PRICE * BigInt(units) });
  return { id: mintedId(rc), rc };
}

const state = {};

test("a provider's offer, a purchase, and the standard ERC-721 views", async () => {
  state.node = await registerNode(provider0);
  const now = (await provider.getBlock("latest")).timestamp;
  await send(provider0, "offer", state.node, "echo", ethers.ZeroHash, 0, PRICE, 1, 100, 3_600, 1_000, now + 3_600, 0);
  state.offer = await sockets.offerCount();
  const moduleBefore = await provider.getBalance(SOCKETS);
  const buyerBefore = await provider.getBalance(buyer.address);
  const { id, rc } = await buySocket(state.offer, 5);
  state.id = id;
  assert.equal(await provider.getBalance(buyer.address), buyerBefore - 5n * PRICE - fee(rc));
  assert.equal(await provider.getBalance(SOCKETS), moduleBefore + 5n * PRICE);
  assert.equal(await sockets.ownerOf(id), buyer.address);
  assert.equal(await sockets.balanceOf(buyer.address), 1n);
  assert.equal(await sockets.tokenOfOwnerByIndex(buyer.address, 0), id);
  assert.equal(await sockets.tokenByIndex((await sockets.totalSupply()) - 1n), id);
  for (const iface of ["0x01ffc9a7", "0x80ac58cd", "0x5b5e139f", "0x780e9d63", "0xad092b5c", "0x8c65f84d"]) {
    assert.equal(await sockets.supportsInterface(iface), true, iface);
  }
  assert.equal(await sockets.name(), "EMC computing sockets");
  const uri = await sockets.tokenURI(id);
  const doc = JSON.parse(Buffer.from(uri.replace("data:application/json;base64,", ""), "base64").toString());
  assert.ok(doc.attributes.some((a) => a.trait_type === "credits left" && a.value === 5), uri);
});

test("safeTransferFrom into an ERC721Holder escrow and out, refused by a non-receiver", async () => {
  const escrow = await deploy("SocketEscrow", "SocketEscrow", buyer);
  const wall = await deploy("NotAReceiver", "NotAReceiver", buyer);
  const safe = "safeTransferFrom(address,address,uint256)";
  await send(buyer, safe, buyer.address, await escrow.getAddress(), state.id);
  assert.equal(await sockets.ownerOf(state.id), await escrow.getAddress());
  assert.equal(await escrow.depositor(SOCKETS, state.id), buyer.address);
  await (await escrow.withdraw(SOCKETS, state.id)).wait();
  assert.equal(await sockets.ownerOf(state.id), buyer.address);
  await assert.rejects(
    sockets.connect(buyer)[safe](buyer.address, await wall.getAddress(), state.id, { gasLimit: 500_000 }).then((t) => t.wait()),
    (e) => /does not accept ERC-721 tokens|reverted/.test(e.message),
  );
  // ethers' own estimate sees the reason.
  await assert.rejects(sockets.connect(buyer)[safe].estimateGas(buyer.address, await wall.getAddress(), state.id), /does not accept ERC-721 tokens/);
  assert.equal(await sockets.ownerOf(state.id), buyer.address);
});

test("an approved address and an operator move sockets; a stranger cannot", async () => {
  await send(buyer, "approve", other.address, state.id);
  assert.equal(await sockets.getApproved(state.id), other.address);
  await send(other, "transferFrom", buyer.address, other.address, state.id);
  assert.equal(await sockets.getApproved(state.id), ethers.ZeroAddress);
  await send(other, "setApprovalForAll", buyer.address, true);
  assert.equal(await sockets.isApprovedForAll(other.address, buyer.address), true);
  await send(buyer, "transferFrom", other.address, buyer.address, state.id);
  await assert.rejects(sockets.connect(renter).transferFrom.estimateGas(buyer.address, renter.address, state.id), /neither the owner/);
  assert.equal(await sockets.ownerOf(state.id), buyer.address);
});

test("a paid rental the owner cannot cut short survives a sale, and pays each owner its share", async () => {
  const id = state.id;
  await send(buyer, "listRental", id, 1_000n, 600);
  const renterBefore = await provider.getBalance(renter.address);
  const rc = await send(renter, "rent", id, 300, { value: 300_000n });
  assert.equal(await provider.getBalance(renter.address), renterBefore - 300_000n - fee(rc));
  assert.equal(await sockets.userOf(id), renter.address);
  await assert.rejects(sockets.connect(buyer).setUser.estimateGas(id, buyer.address, 0), /paid rental/);
  await assert.rejects(sockets.connect(buyer).cancelSubscription.estimateGas(id), /paid rental/);
  // Sold mid-rental (two seconds in): the seller is paid what accrued while it held it.
  const started = (await provider.getBlock(rc.blockNumber)).timestamp;
  while ((await provider.getBlock("latest")).timestamp < started + 2) await new Promise((r) => setTimeout(r, 250));
  const sellerBefore = await provider.getBalance(buyer.address);
  const sale = await send(buyer, "transferFrom", buyer.address, other.address, id);
  const released = sale.logs.map((l) => sockets.interface.parseLog(l)).filter((e) => e && e.name === "RentReleased");
  const paid = released.reduce((s, e) => s + e.args.amount, 0n);
  assert.ok(paid > 0n && paid < 300_000n, `released ${paid}`);
  assert.equal(await provider.getBalance(buyer.address), sellerBefore + paid - fee(sale));
  assert.equal(await sockets.ownerOf(id), other.address);
  assert.equal(await sockets.userOf(id), renter.address, "the rental survives the sale");
  const s = await sockets.socket(id);
  assert.equal(s.paidRental, true);
  state.rentLeft = 300_000n - paid;
});

test("an expired socket's unused credits are refunded to its holder of record", async () => {
  const now = (await provider.getBlock("latest")).timestamp;
  await send(provider0, "offer", state.node, "echo", ethers.ZeroHash, 0, PRICE, 1, 10, 2, 100, now + 3_600, 0);
  const { id } = await buySocket(await sockets.offerCount(), 4);
  await send(buyer, "transferFrom", buyer.address, other.address, id);
  await assert.rejects(sockets.connect(renter).refund.estimateGas(id), /refund opens at/);
  // Two seconds of validity and a settle window of two (the harness's node): wait them out.
  const expires = Number(await sockets.expiresAt(id));
  while ((await provider.getBlock("latest")).timestamp < expires + 3) await new Promise((r) => setTimeout(r, 250));
  const holderBefore = await provider.getBalance(other.address);
  const moduleBefore = await provider.getBalance(SOCKETS);
  await send(renter, "refund", id);
  assert.equal(await provider.getBalance(other.address), holderBefore + 4n * PRICE, "the holder gets it all, paying nothing");
  assert.equal(await provider.getBalance(SOCKETS), moduleBefore - 4n * PRICE);
  assert.equal((await sockets.socket(id)).credits, 0n);
});

test("the module holds exactly the credits' escrow and the rent not yet released", async () => {
  let held = 0n;
  const total = await sockets.totalSupply();
  for (let i = 1n; i <= total; i++) held += (await sockets.socket(i)).escrow;
  assert.equal(await provider.getBalance(SOCKETS), held + state.rentLeft);
});

// Transfers by what their two sides hold: [what moves, holder's count, which, recipient's count].
const GAS_CASES = [
  ["its only token, to a new address", 1, 0, 0],
  ["the first of seven, to a new address", 7, 0, 0],
  ["the first of nine, to a new address", 9, 0, 0],
  ["its only token, to a holder of one", 1, 0, 1],
  ["its only token, to a holder of six", 1, 0, 6],
  ["its only token, to a holder of seven", 1, 0, 7],
];

test("gas: a socket transfer against OpenZeppelin's ERC-721 on the same chain", async () => {
  const plain = await deploy("PlainNFT", "PlainNFT", buyer);
  const enumerable = await deploy("EnumerableNFT", "PlainNFT", buyer);
  const mintSocket = async (to) => {
    const tx = await sockets.connect(provider0).mint(to, state.node, "echo", ethers.ZeroHash, 0, PRICE, 3_600, 0);
    return mintedId(await tx.wait());
  };
  let next = 1_000n;
  const mintTo = async (c, to) => {
    if (c === sockets) return mintSocket(to);
    next += 1n;
    await (await c.connect(buyer).mint(to, next)).wait();
    return next;
  };
  const table = {};
  for (const [name, c] of [["OpenZeppelin ERC721", plain], ["OpenZeppelin ERC721Enumerable", enumerable], ["socket", sockets]]) {
    table[name] = [];
    for (const [, held, pick, theirs] of GAS_CASES) {
      // A fresh holder (funded here) and a fresh recipient, holding what the case says.
      const h = ethers.Wallet.createRandom().connect(provider);
      await (await buyer.sendTransaction({ to: h.address, value: ethers.parseEther("1") })).wait();
      const to = ethers.Wallet.createRandom().address;
      const ids = [];
      for (let k = 0; k < held; k++) ids.push(await mintTo(c, h.address));
      for (let k = 0; k < theirs; k++) await mintTo(c, to);
      const rc = await (await c.connect(h).transferFrom(h.address, to, ids[pick])).wait();
      table[name].push(Number(rc.gasUsed));
    }
  }
  for (const [i, [what]] of GAS_CASES.entries()) {
    console.log(`GAS transferFrom of ${what}: ${Object.entries(table).map(([n, g]) => `${n} ${g[i]}`).join(", ")}`);
  }
  const s = table.socket, oz = table["OpenZeppelin ERC721"], oze = table["OpenZeppelin ERC721Enumerable"];
  // No more than OpenZeppelin's plain ERC721 while each list fits the word carrying its
  // count (up to seven held; ARCHITECTURE.md says why past that it cannot be), and no
  // more than OpenZeppelin's ERC721Enumerable, which has the same features, ever.
  for (const i of [0, 1, 3, 4]) assert.ok(s[i] <= oz[i], `${GAS_CASES[i][0]}: a socket ${s[i]}, OpenZeppelin's ERC721 ${oz[i]}`);
  for (const i of GAS_CASES.keys()) assert.ok(s[i] <= oze[i], `${GAS_CASES[i][0]}: a socket ${s[i]}, ERC721Enumerable ${oze[i]}`);
});

test("Foundry's cast reads and moves a socket unchanged", async () => {
  const cast = path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules", ".bin", "cast");
  const run = (...args) => execFileSync(cast, [...args, "--rpc-url", RPC], { encoding: "utf8" }).trim();
  const { id } = await buySocket(state.offer, 2, buyer);
  assert.equal(run("call", SOCKETS, "ownerOf(uint256)(address)", id.toString()), buyer.address);
  assert.match(run("call", SOCKETS, "tokenURI(uint256)(string)", id.toString()), /data:application\/json;base64,/);
  const to = ethers.Wallet.createRandom().address;
  run("send", "--private-key", KEYS[1], SOCKETS, "safeTransferFrom(address,address,uint256)", buyer.address, to, id.toString());
  assert.equal(run("call", SOCKETS, "ownerOf(uint256)(address)", id.toString()), to);
  assert.equal(await sockets.ownerOf(id), to);
});

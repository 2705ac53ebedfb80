// ethers.js v6 against a running `emc node --dev`: transfers, an ERC-20 and an ERC-721
// compiled by solc, events through eth_getLogs and through WebSocket subscriptions,
// reverts with their reason, historical reads, and the Chain system contract.
//
// EMC_RPC_URL and EMC_WS_URL name the node (the Rust harness in
// bin/emc/tests/ethers_e2e.rs starts one and sets them).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { compile } from "./compile.mjs";

const RPC = process.env.EMC_RPC_URL || "http://127.0.0.1:8545";
const WS = process.env.EMC_WS_URL || RPC.replace(/^http/, "ws");
// Hardhat/Anvil development keys 0 and 1: the node funds them in --dev.
const KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const KEY1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

// cacheTimeout -1: ethers otherwise reuses an identical request's answer for 250 ms, and on a
// fast chain two sends in a row would then both pick the same "pending" nonce.
const provider = new ethers.JsonRpcProvider(RPC, undefined, { polling: true, pollingInterval: 200, cacheTimeout: -1 });
const ws = new ethers.WebSocketProvider(WS);
const alice = new ethers.Wallet(KEY0, provider);
const bob = new ethers.Wallet(KEY1, provider);
after(async () => {
  provider.destroy();
  await ws.destroy();
});

function withTimeout(promise, ms, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)),
  ]);
}

test("chain id, client version and dev funding", async () => {
  const net = await provider.getNetwork();
  assert.equal(net.chainId, 31337n);
  const version = await provider.send("web3_clientVersion", []);
  assert.match(version, /^emc\//);
  assert.ok((await provider.getBalance(alice.address)) > ethers.parseEther("1000"));
});

test("transfers move value, charge fees, and old balances stay readable", async () => {
  const to = ethers.Wallet.createRandom().address;
  const before = await provider.getBalance(alice.address);
  const tx = await alice.sendTransaction({ to, value: ethers.parseEther("1.25") });
  const rc = await tx.wait();
  assert.equal(rc.status, 1);
  assert.equal(await provider.getBalance(to), ethers.parseEther("1.25"));
  const fee = rc.gasUsed * rc.gasPrice;
  assert.equal(await provider.getBalance(alice.address), before - ethers.parseEther("1.25") - fee);
  // At the block before, the recipient had nothing.
  assert.equal(await provider.getBalance(to, rc.blockNumber - 1), 0n);
  const fetched = await provider.getTransaction(tx.hash);
  assert.equal(fetched.from, alice.address);
  assert.equal(fetched.blockNumber, rc.blockNumber);
  const block = await provider.getBlock(rc.blockNumber, true);
  assert.ok(block.transactions.includes(tx.hash));
  // A legacy (EIP-155) transaction is accepted too.
  const legacy = await bob.sendTransaction({ to, value: 1n, type: 0, gasPrice: (await provider.getFeeData()).gasPrice });
  assert.equal((await legacy.wait()).status, 1);
});

test("ERC-20: deploy, transfer, events by getLogs and by WebSocket subscription", async () => {
  const { abi, bytecode } = compile("Token");
  const factory = new ethers.ContractFactory(abi, bytecode, alice);
  const token = await factory.deploy("EMC Test", "EMCT", ethers.parseUnits("1000000", 18));
  await token.waitForDeployment();
  const address = await token.getAddress();
  assert.notEqual(await provider.getCode(address), "0x");
  assert.equal(await token.symbol(), "EMCT");
  assert.equal(await token.balanceOf(alice.address), ethers.parseUnits("1000000", 18));

  const wsToken = new ethers.Contract(address, abi, ws);
  const seen = new Promise((resolve) => {
    wsToken.on("Transfer", (from, to, value, ev) => {
      if (to === bob.address) resolve({ from, to, value, ev });
    });
  });
  const heads = new Promise((resolve) => ws.once("block", resolve));
  // Give the subscriptions a moment to be installed before the transfer lands.
  await new Promise((r) => setTimeout(r, 300));

  const tx = await token.transfer(bob.address, 12345n);
  const rc = await tx.wait();
  assert.equal(rc.status, 1);
  assert.equal(await token.balanceOf(bob.address), 12345n);

  const pushed = await withTimeout(seen, 15000, "the Transfer event over WebSocket");
  assert.equal(pushed.from, alice.address);
  assert.equal(pushed.value, 12345n);
  assert.ok((await withTimeout(heads, 15000, "a newHeads notification")) > 0);
  await wsToken.removeAllListeners();

  const logs = await provider.getLogs({
    address,
    topics: [token.interface.getEvent("Transfer").topicHash, ethers.zeroPadValue(alice.address, 32)],
    fromBlock: 0,
    toBlock: "latest",
  });
  const parsed = logs.map((l) => token.interface.parseLog(l));
  assert.deepEqual(parsed.map((p) => p.args.to), [bob.address]);
  assert.equal(logs[0].transactionHash, tx.hash);
  // The mint in the constructor is found when the filter names no sender.
  const all = await token.queryFilter(token.filters.Transfer(), 0, "latest");
  assert.equal(all.length, 2);
});

test("ERC-20: a revert carries its reason and costs nothing", async () => {
  const { abi, bytecode } = compile("Token");
  const token = await (await new ethers.ContractFactory(abi, bytecode, alice).deploy("T", "T", 10n)).waitForDeployment();
  const asBob = token.connect(bob);
  const before = await provider.getBalance(bob.address);
  await assert.rejects(asBob.transfer(alice.address, 1n), (e) => {
    assert.equal(e.code, "CALL_EXCEPTION");
    assert.match(e.reason || e.shortMessage, /insufficient balance/);
    return true;
  });
  assert.equal(await provider.getBalance(bob.address), before);
});

test("ERC-721: mint, approve, transferFrom, events with three indexed topics", async () => {
  const { abi, bytecode } = compile("Collectible");
  const nft = await (await new ethers.ContractFactory(abi, bytecode, alice).deploy("Sockets", "SOCK")).waitForDeployment();
  assert.equal(await nft.supportsInterface("0x80ac58cd"), true);
  await (await nft.mint(alice.address, 7n)).wait();
  await (await nft.approve(bob.address, 7n)).wait();
  const rc = await (await nft.connect(bob).transferFrom(alice.address, bob.address, 7n)).wait();
  assert.equal(await nft.ownerOf(7n), bob.address);
  assert.equal(await nft.balanceOf(alice.address), 0n);
  const logs = await provider.getLogs({
    address: await nft.getAddress(),
    topics: [nft.interface.getEvent("Transfer").topicHash, null, null, ethers.toBeHex(7n, 32)],
    fromBlock: 0,
  });
  assert.equal(logs.length, 2); // the mint and the transfer
  assert.equal(logs[1].blockNumber, rc.blockNumber);
  await assert.rejects(nft.connect(bob).mint(bob.address, 8n), /only the minter/);
});

test("the Chain system contract answers through its Solidity ABI", async () => {
  const chain = new ethers.Contract(
    "0x0000000000000000000000000000000000001000",
    [
      "function version() view returns (string)",
      "function chainId() view returns (uint256)",
      "function validators() view returns (address[])",
      "function isValidator(address) view returns (bool)",
    ],
    provider,
  );
  assert.match(await chain.version(), /^emc\//);
  assert.equal(await chain.chainId(), 31337n);
  const vals = await chain.validators();
  assert.equal(vals.length, 1);
  assert.equal(await chain.isValidator(vals[0]), true);
  assert.equal(await chain.isValidator(alice.address), false);
  // The proposer earns the tips: its balance grows as blocks carry transactions.
  assert.ok((await provider.getBalance(vals[0])) > 0n);
});

test("fee history and pending nonces", async () => {
  const hist = await provider.send("eth_feeHistory", ["0x4", "latest", [25, 75]]);
  assert.equal(hist.baseFeePerGas.length, hist.gasUsedRatio.length + 1);
  assert.equal(hist.reward.length, hist.gasUsedRatio.length);
  // provider.send bypasses ethers' 250 ms cache of identical requests.
  const count = async (tag) => Number(await provider.send("eth_getTransactionCount", [alice.address, tag]));
  const n = await count("pending");
  const tx = await alice.sendTransaction({ to: bob.address, value: 1n, nonce: n });
  assert.equal(await count("pending"), n + 1);
  await tx.wait();
  assert.equal(await count("latest"), n + 1);
});

test("the benchmark's ERC-20 creation code matches Token.sol", async () => {
  const fs = await import("node:fs");
  const committed = fs.readFileSync(new URL("../../bin/emc/src/cmd/bench/token.hex", import.meta.url), "utf8").trim();
  assert.equal(committed, compile("Token").bytecode, "regenerate with: node tests/e2e/compile.mjs Token > bin/emc/src/cmd/bench/token.hex");
});

test("newPendingTransactions pushes a submitted transaction's hash", async () => {
  const seen = new Promise((resolve) => ws.on("pending", (h) => resolve(h)));
  await new Promise((r) => setTimeout(r, 300));
  const tx = await bob.sendTransaction({ to: alice.address, value: 2n });
  const h = await withTimeout(seen, 15000, "a pending transaction notification");
  assert.match(h, /^0x[0-9a-f]{64}$/);
  await ws.off("pending");
  await tx.wait();
});

test("a keystore written by `emc keys new` opens in ethers", { skip: !process.env.EMC_KEYSTORE_FILE }, async () => {
  const fs = await import("node:fs");
  const json = fs.readFileSync(process.env.EMC_KEYSTORE_FILE, "utf8");
  const w = await ethers.Wallet.fromEncryptedJson(json, process.env.EMC_KEYSTORE_PASSWORD);
  assert.equal(w.address.toLowerCase(), process.env.EMC_KEYSTORE_ADDRESS.toLowerCase());
});

// The staking system contract through its ABI, as a dApp or wallet would drive it. The
// Rust harness starts the node with 8-block epochs and a 12-block unbonding period.
test("staking: stake, get elected, earn and claim, unstake, leave, withdraw", async () => {
  const STAKING = "0x0000000000000000000000000000000000001001";
  const staking = new ethers.Contract(
    STAKING,
    [
      "event Staked(address indexed account, uint8 indexed role, uint256 amount)",
      "event Unstaked(address indexed account, uint8 indexed role, uint256 amount, uint64 releaseHeight)",
      "event CandidateRegistered(address indexed validator, bytes32 consensusKey)",
      "event RewardsClaimed(address indexed account, uint256 amount)",
      "event Withdrawn(address indexed account, uint256 amount)",
      "function stake(uint8 role) payable",
      "function unstake(uint8 role, uint256 amount)",
      "function withdraw() returns (uint256)",
      "function registerValidator(bytes32 consensusKey)",
      "function claimRewards() returns (uint256)",
      "function stakeOf(address account, uint8 role) view returns (uint256 staked, uint256 unbonding, uint64 releaseHeight)",
      "function pendingRewards(address account) view returns (uint256)",
      "function currentEpoch() view returns (uint64)",
    ],
    provider,
  );
  const chain = new ethers.Contract(
    "0x0000000000000000000000000000000000001000",
    ["function validators() view returns (address[])"],
    provider,
  );
  const carol = ethers.Wallet.createRandom().connect(provider);
  await (await alice.sendTransaction({ to: carol.address, value: ethers.parseEther("1000") })).wait();
  const s = staking.connect(carol);
  const parsed = (rc) => rc.logs.map((l) => staking.interface.parseLog(l)).filter(Boolean);

  // Below the validator minimum (100 EMC): reverted with the module's reason.
  await assert.rejects(s.stake(0, { value: ethers.parseEther("50") }), /below the minimum/);
  let rc = await (await s.stake(0, { value: ethers.parseEther("300") })).wait();
  const staked = parsed(rc).find((e) => e.name === "Staked");
  assert.equal(staked.args.account, carol.address);
  assert.equal(staked.args.amount, ethers.parseEther("300"));
  const key = ethers.hexlify(ethers.randomBytes(32));
  rc = await (await s.registerValidator(key)).wait();
  assert.equal(parsed(rc).find((e) => e.name === "CandidateRegistered").args.consensusKey, key);

  // Elected at the end of the epoch: the Chain contract lists it.
  const until = async (what, f) => {
    for (let i = 0; i < 200; i++) {
      if (await f()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`timed out waiting for ${what}`);
  };
  await until("the election", async () => (await chain.validators()).includes(carol.address));
  await until("block rewards", async () => (await staking.pendingRewards(carol.address)) > 0n);
  const before = await provider.getBalance(carol.address);
  rc = await (await s.claimRewards()).wait();
  const claimed = parsed(rc).find((e) => e.name === "RewardsClaimed").args.amount;
  assert.ok(claimed > 0n);
  assert.equal(await provider.getBalance(carol.address), before + claimed - rc.fee);

  // Unstake: the stake unbonds; withdrawing early reverts; it leaves the set.
  rc = await (await s.unstake(0, ethers.parseEther("300"))).wait();
  const release = parsed(rc).find((e) => e.name === "Unstaked").args.releaseHeight;
  const st = await staking.stakeOf(carol.address, 0);
  assert.equal(st.staked, 0n);
  assert.equal(st.unbonding, ethers.parseEther("300"));
  await assert.rejects(s.withdraw(), /nothing to withdraw yet/);
  await until("leaving the set", async () => !(await chain.validators()).includes(carol.address));
  await until("the release height", async () => BigInt(await provider.getBlockNumber()) >= release);
  rc = await (await s.withdraw()).wait();
  assert.equal(parsed(rc).find((e) => e.name === "Withdrawn").args.amount, ethers.parseEther("300"));
  const rpc = await provider.send("emc_staking", [carol.address]);
  assert.equal(rpc.roles.validator.unbonding, "0x0");
});

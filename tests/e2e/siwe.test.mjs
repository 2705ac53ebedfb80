// Sign-In with Ethereum at the gateway with the published `siwe` package: a wallet
// signs one EIP-4361 message whose ReCap (EIP-5573) gives a session key an escrow
// budget and apps; the session key then signs the calls. A solc-compiled EIP-1271
// wallet signs in the same way. Refusals: an app outside the ReCap, the budget spent,
// a replayed message, a signature that is not the account's, a session past its end.
// The calls settle on chain from the wallet's escrow.
//
// EMC_RPC_URL names a validator, EMC_GATEWAY a router's gateway whose computing node
// serves `py` (EMC_PRICE wei a call) and `py2`; EMC_KEY_1 and EMC_KEY_2 are funded
// accounts (bin/emc/tests/ethers_e2e.rs starts all of it).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { SiweMessage } from "siwe";
import { compile } from "./compile.mjs";

const RPC = process.env.EMC_RPC_URL;
const GW = process.env.EMC_GATEWAY;
const PRICE = BigInt(process.env.EMC_PRICE);
const TASKS = "0x0000000000000000000000000000000000001004";
const SESSIONS = "0x0000000000000000000000000000000000001009";
const provider = new ethers.JsonRpcProvider(RPC, undefined, { polling: true, pollingInterval: 200, cacheTimeout: -1 });
after(() => provider.destroy());
const chainId = Number((await provider.getNetwork()).chainId);
const tasks = new ethers.Contract(
  TASKS,
  [
    "function deposit() payable",
    "function escrowOf(address account) view returns (uint256 balance, uint256 pending, uint64 unlockAt)",
    "event Settled(bytes32 indexed receiptId, address indexed account, bytes32 indexed nodeId, address router, uint256 nodeAmount, uint256 routerFee)",
  ],
  provider,
);
const sessions = new ethers.Contract(
  SESSIONS,
  ["function session(address sessionKey) view returns (tuple(address account, uint64 expires, uint8 kind, uint256 limit, uint256 socket, bytes32[] apps, bool revoked))"],
  provider,
);
// A call's cost: the node's price and the router's 5%.
const COST = PRICE + (PRICE * 500n) / 10_000n;
const host = new URL(GW).host;
const privateKey = (k) => (k.startsWith("0x") ? k : `0x${k}`);

// EIP-5573: the capability object, base64url of its JSON (keys sorted), and the
// statement it generates.
function recap(att) {
  const sorted = (v) => (Array.isArray(v) ? v.map(sorted) : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  const resource = "urn:recap:" + Buffer.from(JSON.stringify(sorted({ att, prf: [] }))).toString("base64url");
  const lines = Object.keys(att).sort().flatMap((uri) => {
    const byNs = {};
    for (const a of Object.keys(att[uri]).sort()) {
      const [ns, name] = a.split("/");
      (byNs[ns] ||= []).push(`'${name}'`);
    }
    return Object.keys(byNs).sort().map((ns) => `'${ns}': ${byNs[ns].join(", ")} for '${uri}'.`);
  });
  const statement = "I further authorize the stated URI to perform the following actions on my behalf:" + lines.map((l, i) => ` (${i + 1}) ${l}`).join("");
  return { resource, statement };
}

// A SIWE message from `address` giving session key `session` an escrow budget.
async function signInMessage(address, session, { limit, apps, seconds }) {
  const { nonce } = await (await fetch(`${GW}/v1/siwe/nonce`)).json();
  const cap = recap({ "urn:emc:escrow": { "emc/spend": [{ limit: limit.toString(), apps }] } });
  const now = Date.now();
  return new SiweMessage({
    domain: host,
    address,
    statement: `Sign in to the EMC gateway. ${cap.statement}`,
    uri: `did:pkh:eip155:${chainId}:${session.address}`,
    version: "1",
    chainId,
    nonce,
    issuedAt: new Date(now).toISOString(),
    expirationTime: new Date(now + seconds * 1000).toISOString(),
    resources: [cap.resource],
  }).prepareMessage();
}

async function post(path, body, key) {
  const headers = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(`${GW}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: r.status, charge: r.headers.get("x-emc-charge"), body: json };
}

// An ordinary EMC API key (emc_client::keys), signed by the session key: the grant's
// readable text (EIP-191), then the ABI of (grant, signature).
async function emcKey(signer, { limit, seconds }) {
  const g = { chainId: BigInt(chainId), router: ethers.ZeroAddress, nonce: 1n, expires: BigInt(Math.floor(Date.now() / 1000) + seconds), limit, request: ethers.ZeroHash };
  const text = `EMC compute grant\nchain: ${g.chainId}\nrouter: any\nnonce: ${g.nonce}\nexpires: ${g.expires}\nlimit: ${g.limit} wei\nrequest: any`;
  const sig = await signer.signMessage(text);
  const abi = ethers.AbiCoder.defaultAbiCoder().encode(
    ["tuple(uint64,address,uint64,uint64,uint256,bytes32)", "bytes"],
    [[g.chainId, g.router, g.nonce, g.expires, g.limit, g.request], sig],
  );
  return "emc_" + abi.slice(2);
}

const message = (r) => (r.body && r.body.error ? r.body.error.message : JSON.stringify(r.body));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function untilSettled(account, want) {
  for (let i = 0; i < 300; i++) {
    if ((await tasks.escrowOf(account)).balance === want) return;
    await sleep(200);
  }
  assert.equal((await tasks.escrowOf(account)).balance, want, "the escrow after settlement");
}

test("a wallet signs in once and its session key pays within the ReCap's apps and budget", async () => {
  const wallet = new ethers.Wallet(privateKey(process.env.EMC_KEY_1), provider);
  const deposit = 100n * COST;
  await (await tasks.connect(wallet).deposit({ value: deposit })).wait();
  const before = (await tasks.escrowOf(wallet.address)).balance;
  const session = ethers.Wallet.createRandom();
  const msg = await signInMessage(wallet.address, session, { limit: 3n * COST, apps: ["py"], seconds: 300 });
  const signature = await wallet.signMessage(msg);

  // An account with no escrow cannot make the router pay to open a session for it.
  const broke = ethers.Wallet.createRandom();
  const poor = await signInMessage(broke.address, ethers.Wallet.createRandom(), { limit: COST, apps: ["py"], seconds: 300 });
  const noEscrow = await post("/v1/siwe", { message: poor, signature: await broke.signMessage(poor) });
  assert.equal(noEscrow.status, 402, message(noEscrow));
  assert.match(message(noEscrow), /has no escrow/);
  // Someone else's signature over the same message opens nothing.
  const forged = await post("/v1/siwe", { message: msg, signature: await ethers.Wallet.createRandom().signMessage(msg) });
  assert.equal(forged.status, 401, message(forged));
  assert.match(message(forged), /no code to ask/);
  // The forged try spent that nonce: the honest signature needs a fresh message.
  const fresh = await signInMessage(wallet.address, session, { limit: 3n * COST, apps: ["py"], seconds: 300 });
  const opened = await post("/v1/siwe", { message: fresh, signature: await wallet.signMessage(fresh) });
  assert.equal(opened.status, 201, message(opened));
  assert.equal(opened.body.account, wallet.address);
  assert.equal(opened.body.sessionKey, session.address);
  assert.equal(opened.body.limit, (3n * COST).toString());
  const onChain = await sessions.session(session.address);
  assert.equal(onChain.account, wallet.address);
  // The same signed message again: its nonce is spent.
  const replay = await post("/v1/siwe", { message: fresh, signature: await wallet.signMessage(fresh) });
  assert.equal(replay.status, 409, message(replay));
  void signature;

  // The session key signs a key of its own with a large limit: the session's binds.
  const key = await emcKey(session, { limit: ethers.parseEther("1"), seconds: 300 });
  for (let i = 0; i < 3; i++) {
    const r = await post("/call/py/echo", { hello: i }, key);
    assert.equal(r.status, 200, message(r));
    assert.equal(r.charge, COST.toString());
    assert.equal(JSON.parse(r.body.got).hello, i);
  }
  const spent = await post("/call/py/echo", { hello: 3 }, key);
  assert.equal(spent.status, 402, message(spent));
  const outside = await post("/call/py2/echo", { hello: "other app" }, key);
  assert.equal(outside.status, 403, message(outside));
  assert.match(message(outside), /does not allow the app "py2"/);
  // Settled from the wallet's escrow, exactly the three calls.
  await untilSettled(wallet.address, before - 3n * COST);
  assert.equal((await tasks.escrowOf(session.address)).balance, 0n);
});

test("a contract wallet signs in through EIP-1271, and its session ends at its expiry", async () => {
  const owner = new ethers.Wallet(privateKey(process.env.EMC_KEY_2), provider);
  const { abi, bytecode } = compile("Wallet1271");
  const w = await new ethers.ContractFactory(abi, bytecode, owner).deploy(owner.address, { value: ethers.parseEther("1") });
  await w.waitForDeployment();
  const wallet = await w.getAddress();
  const deposit = 10n * COST;
  await (await w.execute(TASKS, deposit, tasks.interface.encodeFunctionData("deposit"))).wait();
  assert.equal((await tasks.escrowOf(wallet)).balance, deposit);

  // A stranger's signature: the wallet says no.
  const session = ethers.Wallet.createRandom();
  const m1 = await signInMessage(wallet, session, { limit: 5n * COST, apps: ["py", "py2"], seconds: 300 });
  const refused = await post("/v1/siwe", { message: m1, signature: await ethers.Wallet.createRandom().signMessage(m1) });
  assert.equal(refused.status, 401, message(refused));
  assert.match(message(refused), /did not accept the signature \(EIP-1271\)/);

  // The owner's: the wallet accepts; the session lasts a few seconds.
  const seconds = 15;
  const m2 = await signInMessage(wallet, session, { limit: 5n * COST, apps: ["py", "py2"], seconds });
  const opened = await post("/v1/siwe", { message: m2, signature: await owner.signMessage(m2) });
  assert.equal(opened.status, 201, message(opened));
  const ends = opened.body.expires;
  const key = await emcKey(session, { limit: ethers.parseEther("1"), seconds: 300 });
  const r = await post("/call/py2/echo", { from: "a contract wallet" }, key);
  assert.equal(r.status, 200, message(r));
  while (Date.now() / 1000 < ends + 1) await sleep(250);
  const late = await post("/call/py/echo", { too: "late" }, key);
  assert.equal(late.status, 401, message(late));
  assert.match(message(late), /session ended/);
  await untilSettled(wallet, deposit - COST);
});

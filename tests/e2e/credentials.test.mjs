// A validator's verifiable credential of a computing node (W3C VC 2.0 as a JWT,
// EdDSA by the validator's consensus key as a did:key), verified with the published
// did-jwt and key-did-resolver, its issuer checked against the chain's validator set
// read with ethers, and its facts against the chain's own logs and state. One byte
// changed and it no longer verifies.
//
// EMC_RPC_URL names the validator, EMC_NODE_RPC the computing node's own RPC (it
// holds no validator key), EMC_NODE_ID the node; bin/emc/tests/ethers_e2e.rs starts
// them after calls through the gateway were paid.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ethers } from "ethers";
import { verifyJWT } from "did-jwt";
import { Resolver } from "did-resolver";
import { getResolver as keyResolver } from "key-did-resolver";

const RPC = process.env.EMC_RPC_URL;
const NODE_RPC = process.env.EMC_NODE_RPC;
const NODE = process.env.EMC_NODE_ID.toLowerCase();
const CHAIN = "0x0000000000000000000000000000000000001000";
const POC = "0x0000000000000000000000000000000000001002";
const REGISTRY = "0x0000000000000000000000000000000000001003";
const TASKS = "0x0000000000000000000000000000000000001004";
const provider = new ethers.JsonRpcProvider(RPC);
const resolver = new Resolver(keyResolver());
const settled = new ethers.Interface([
  "event Settled(bytes32 indexed receiptId, address indexed account, bytes32 indexed nodeId, address router, uint256 nodeAmount, uint256 routerFee)",
]);
const scoreSet = new ethers.Interface(["event ScoreSet(uint64 indexed epoch, bytes32 indexed nodeId, address owner, uint64 score)"]);

async function rpc(url, method, params) {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  return r.json();
}

const didKey = (ed25519) => "did:key:z" + ethers.encodeBase58(ethers.concat(["0xed01", ed25519]));

// The chain's own record, read with ethers up to `block`.
async function onChain(block) {
  const logs = async (address, iface, name, topics) =>
    (await provider.getLogs({ address, topics: [iface.getEvent(name).topicHash, ...topics], fromBlock: 0, toBlock: block })).map((l) => ({
      ...iface.parseLog(l).args.toObject(),
      block: l.blockNumber,
    }));
  return {
    settled: await logs(TASKS, settled, "Settled", [null, null, NODE]),
    scores: await logs(POC, scoreSet, "ScoreSet", [null, NODE]),
  };
}

test("a validator's credential for a computing node verifies, and says what the chain says", async () => {
  // The calls the gateway served settle, and the node's first epoch is scored.
  let head, chain;
  for (let i = 0; i < 240; i++) {
    head = await provider.getBlockNumber();
    chain = await onChain(head);
    if (chain.settled.length && chain.scores.length) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(chain.settled.length, "no settled receipt of the node on chain");
  assert.ok(chain.scores.length, "no E of the node on chain");

  const answer = await rpc(RPC, "emc_issueCredential", [NODE, ethers.toQuantity(head)]);
  assert.ok(answer.result, JSON.stringify(answer));
  const { jwt, credential } = answer.result;
  const verified = await verifyJWT(jwt, { resolver });
  const vc = verified.payload;
  assert.deepEqual(vc["@context"], ["https://www.w3.org/ns/credentials/v2"]);
  assert.deepEqual(vc.type, ["VerifiableCredential", "EmcComputingNodeCredential"]);
  assert.equal(vc.issuer, verified.issuer);
  assert.deepEqual(vc.credentialSubject, credential.credentialSubject);
  const [header] = jwt.split(".");
  assert.equal(JSON.parse(Buffer.from(header, "base64url")).typ, "vc+jwt");

  // The issuer is a validator at the credential's block.
  const set = await new ethers.Contract(CHAIN, ["function validatorSet() view returns (address[], bytes32[], uint256[])"], provider).validatorSet({
    blockTag: head,
  });
  assert.ok(set[1].map(didKey).includes(vc.issuer), `${vc.issuer} is not among ${set[1]}`);

  // What it says is what the chain says.
  const s = vc.credentialSubject;
  const block = await provider.getBlock(head);
  assert.equal(s.id, didKey(NODE));
  assert.deepEqual(s.chain, { chainId: Number((await provider.getNetwork()).chainId), block: head, blockHash: block.hash });
  assert.equal(vc.validFrom, new Date(block.timestamp * 1000).toISOString().replace(".000", ""));
  const info = await new ethers.Contract(
    REGISTRY,
    ["function nodeInfo(bytes32) view returns (address owner, string[] apps, uint256[] prices, string hardware, uint64 registeredAt)"],
    provider,
  ).nodeInfo(NODE, { blockTag: head });
  assert.equal(s.registration.owner, info.owner);
  assert.equal(s.registration.ownerDid, `did:pkh:eip155:${s.chain.chainId}:${info.owner}`);
  assert.deepEqual(
    s.registration.apps,
    info.apps.map((app, i) => ({ app, pricePerUnit: info.prices[i].toString() })),
  );
  assert.equal(s.registration.registeredAt, Number(info.registeredAt));
  assert.equal(s.settlements.receipts, chain.settled.length);
  assert.equal(s.settlements.earned, chain.settled.reduce((a, e) => a + e.nodeAmount, 0n).toString());
  assert.equal(s.settlements.complete, true);
  assert.deepEqual(
    s.computingPower.history,
    chain.scores.reverse().map((e) => ({ epoch: Number(e.epoch), score: Number(e.score), block: e.block })),
  );
  assert.deepEqual(s.faults, []);

  // One byte changed, anywhere that matters, and it does not verify.
  const [h, p, sig] = jwt.split(".");
  const forged = JSON.parse(Buffer.from(p, "base64url"));
  forged.credentialSubject.settlements.earned = (BigInt(s.settlements.earned) * 10n).toString();
  const reencoded = `${h}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${sig}`;
  await assert.rejects(verifyJWT(reencoded, { resolver }), /invalid_signature/);
  for (const at of [h.length + 5, jwt.length - 10]) {
    const flipped = jwt.slice(0, at) + (jwt[at] === "A" ? "B" : "A") + jwt.slice(at + 1);
    await assert.rejects(verifyJWT(flipped, { resolver }), `a byte changed at ${at} still verified`);
  }

  // A node that is no validator issues none, and says why.
  const refused = await rpc(NODE_RPC, "emc_issueCredential", [NODE]);
  assert.equal(refused.error?.code, -32000, JSON.stringify(refused));
  assert.match(refused.error.message, /no validator key/);
  const bad = await rpc(RPC, "emc_issueCredential", ["0x1234"]);
  assert.equal(bad.error?.code, -32602, JSON.stringify(bad));
  provider.destroy();
});

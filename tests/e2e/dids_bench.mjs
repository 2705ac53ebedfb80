// Benchmark: resolving a did:ethr with many registry events, ethr-did-resolver (which
// calls changed() and walks eth_getLogs back block by block) against the node's own
// resolver (emc_resolveDid, one topic-index read), side by side on one node.
// EMC_RPC_URL names an `emc node --dev`; the Rust harness is the ignored test
// `bench_did_resolution` in bin/emc/tests/ethers_e2e.rs. Prints a table.
import { ethers } from "ethers";
import { Resolver } from "did-resolver";
import { getResolver } from "ethr-did-resolver";
import assert from "node:assert/strict";
import { devWallet } from "./devchain.mjs";

const RPC = process.env.EMC_RPC_URL || "http://127.0.0.1:8545";
const DIDS = "0x0000000000000000000000000000000000001008";
const provider = new ethers.JsonRpcProvider(RPC, undefined, { polling: true, pollingInterval: 100, cacheTimeout: -1 });
const chainId = (await provider.getNetwork()).chainId;
const network = `0x${chainId.toString(16)}`;
const resolver = new Resolver(getResolver({ networks: [{ name: "emc", chainId, rpcUrl: RPC, registry: DIDS }] }));
const registry = new ethers.Contract(DIDS, ["function setAttribute(address identity, bytes32 name, bytes value, uint validity)"], provider);

async function ours(did) {
  const r = await fetch(RPC, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "emc_resolveDid", params: [did] }) });
  return (await r.json()).result;
}

const p50 = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(f, n) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    ms.push(performance.now() - t);
  }
  return p50(ms);
}

console.log("| events | blocks | ethr-did-resolver p50 ms | emc_resolveDid p50 ms | ratio |");
console.log("|---:|---:|---:|---:|---:|");
let w = 0;
for (const [events, perBlock] of [[10, 1], [100, 1], [100, 10]]) {
  const owner = devWallet(w++, provider);
  const name = ethers.encodeBytes32String("did/svc/EMCNode");
  let nonce = await provider.getTransactionCount(owner.address);
  const blocks = new Set();
  for (let i = 0; i < events; i += perBlock) {
    const batch = [];
    for (let j = 0; j < perBlock && i + j < events; j++) {
      const value = ethers.toUtf8Bytes(`https://node-${i + j}.example/emc`);
      batch.push(registry.connect(owner).setAttribute(owner.address, name, value, 86400, { nonce: nonce++, gasLimit: 200000 }));
    }
    for (const tx of await Promise.all(batch)) blocks.add((await tx.wait()).blockNumber);
  }
  const did = `did:ethr:${network}:${owner.address}`;
  const theirs = await resolver.resolve(did);
  assert.deepEqual((await ours(did)).didDocument, theirs.didDocument);
  assert.equal(theirs.didDocument.service.length, events);
  const n = 15;
  const a = await time(() => resolver.resolve(did), n);
  const b = await time(() => ours(did), n);
  console.log(`| ${events} | ${blocks.size} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(a / b).toFixed(1)} |`);
}
provider.destroy();

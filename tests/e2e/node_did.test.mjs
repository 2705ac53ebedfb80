// A computing node's own DID, as the published ethr-did-resolver reads it from the
// chain: its X25519 encryption key (keyAgreement) and its EMCNode service, whose
// binding the node key signed, so anyone who knows the node id can check that this
// DID and key are that node's. The node's resolver answers the same document.
//
// EMC_RPC_URL names a validator; EMC_NODE_ID and EMC_NODE_DID the node (what `emc
// node` printed); bin/emc/tests/ethers_e2e.rs starts them.
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { ethers } from "ethers";
import { Resolver } from "did-resolver";
import { getResolver as ethrResolver } from "ethr-did-resolver";

const RPC = process.env.EMC_RPC_URL;
const NODE = process.env.EMC_NODE_ID.toLowerCase();
const DID = process.env.EMC_NODE_DID;
const DIDS = "0x0000000000000000000000000000000000001008";
const provider = new ethers.JsonRpcProvider(RPC);
const chainId = (await provider.getNetwork()).chainId;
provider.destroy();
const resolver = new Resolver(ethrResolver({ networks: [{ name: "emc", chainId, rpcUrl: RPC, registry: DIDS }] }));

async function rpc(method, params) {
  const r = await fetch(RPC, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const j = await r.json();
  if (j.error) throw new Error(`${method}: ${j.error.message}`);
  return j.result;
}

test("a computing node publishes its encryption key and its endpoint, bound by its node key", async () => {
  // The node publishes once it is registered: wait for both attributes.
  let doc;
  for (let i = 0; i < 150; i++) {
    doc = (await resolver.resolve(DID)).didDocument;
    if (doc && doc.keyAgreement?.length && doc.service?.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(doc.keyAgreement?.length, `no key agreement key in ${JSON.stringify(doc)}`);
  const enc = doc.verificationMethod.find((m) => m.type === "X25519KeyAgreementKey2019");
  assert.ok(enc, JSON.stringify(doc));
  const x25519 = Buffer.from(enc.publicKeyBase64, "base64");
  assert.equal(x25519.length, 32);
  const svc = doc.service.find((s) => s.type === "EMCNode");
  assert.ok(svc, JSON.stringify(doc));
  const endpoint = typeof svc.serviceEndpoint === "string" ? JSON.parse(svc.serviceEndpoint) : svc.serviceEndpoint;
  assert.equal(endpoint.node, NODE);
  assert.match(endpoint.uri, /^\/p2p\/12D3KooW/);

  // The binding: the node key (the node id is its ed25519 public key) signed
  // "emc node did v1" . chainId . identity . nodeId . x25519.
  const identity = DID.split(":").pop();
  const msg = ethers.concat([ethers.toUtf8Bytes("emc node did v1"), ethers.toBeHex(chainId, 8), identity, NODE, x25519]);
  const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(NODE.slice(2), "hex").toString("base64url") }, format: "jwk" });
  assert.ok(crypto.verify(null, ethers.getBytes(msg), key, ethers.getBytes(endpoint.binding)), "the node key signed the binding");
  const other = ethers.getBytes(msg);
  other[other.length - 1] ^= 1;
  assert.ok(!crypto.verify(null, other, key, ethers.getBytes(endpoint.binding)), "another key is not bound");

  // The node's own resolver says the same.
  const ours = await rpc("emc_resolveDid", [DID]);
  assert.deepEqual(ours.didDocument, doc);
});

// DIDs on EMC with the published DID tooling: identities are changed in the ERC-1056
// registry module (0x…1008) by ethr-did-resolver's own EthrDidController (direct and
// signed, relayed changes), then every did:ethr is resolved by ethr-did-resolver
// (walking the registry's logs through eth_getLogs) and by the node's resolver
// (emc_resolveDid and GET /1.0/identifiers/{did}, from its topic index): the
// documents and their metadata must be the same. did:pkh and did:key are resolved
// by pkh-did-resolver and key-did-resolver and by the node, in both representations.
//
// EMC_RPC_URL names an `emc node --dev` (bin/emc/tests/ethers_e2e.rs starts one).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { ethers } from "ethers";
import { Resolver } from "did-resolver";
import { getResolver as ethrResolver, EthrDidController } from "ethr-did-resolver";
import { getResolver as keyResolver } from "key-did-resolver";
import { getResolver as pkhResolver } from "pkh-did-resolver";
import { devWallet } from "./devchain.mjs";

const RPC = process.env.EMC_RPC_URL || "http://127.0.0.1:8545";
const DIDS = "0x0000000000000000000000000000000000001008";
const provider = new ethers.JsonRpcProvider(RPC, undefined, { polling: true, pollingInterval: 200, cacheTimeout: -1 });
after(() => provider.destroy());
const wallets = [0, 1, 2, 3, 4, 5].map((i) => devWallet(i, provider));
const chainId = (await provider.getNetwork()).chainId;
const network = `0x${chainId.toString(16)}`;
const did = (id) => `did:ethr:${network}:${id}`;

const resolver = new Resolver({
  ...ethrResolver({ networks: [{ name: "emc", chainId, rpcUrl: RPC, registry: DIDS }] }),
  ...keyResolver(),
  ...pkhResolver(),
});

async function rpc(method, params) {
  const r = await fetch(RPC, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const j = await r.json();
  if (j.error) throw new Error(`${method}: ${j.error.message}`);
  return j.result;
}

async function http(didUrl, accept) {
  const r = await fetch(`${RPC.replace(/\/$/, "")}/1.0/identifiers/${encodeURIComponent(didUrl)}`, { headers: accept ? { accept } : {} });
  return { status: r.status, type: r.headers.get("content-type"), body: await r.json() };
}

/// Objects with their keys sorted, so equal documents compare equal as text.
const sorted = (v) => (Array.isArray(v) ? v.map(sorted) : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);

/// The node's answer (both ways) equals the published resolver's.
async function same(didUrl, accept) {
  // Both resolvers count validity against the machine's clock, so a delegate revoked
  // in this second is still valid to whichever of them resolves first: two answers
  // a second boundary apart may differ. Try again a second later (up to three times);
  // a real disagreement stays.
  let ours, theirs;
  for (let attempt = 1; ; attempt++) {
    theirs = await resolver.resolve(didUrl, accept ? { accept } : {});
    ours = await rpc("emc_resolveDid", accept ? [didUrl, { accept }] : [didUrl]);
    const agree = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
    if (attempt === 3 || (agree(ours.didDocument, theirs.didDocument) && agree(ours.didDocumentMetadata, theirs.didDocumentMetadata))) break;
    await new Promise((r) => setTimeout(r, 1100));
  }
  // The whole of both answers in the message: node's diff of a long document is cut.
  const both = `\nours:   ${JSON.stringify(ours)}\ntheirs: ${JSON.stringify(theirs)}`;
  assert.deepEqual(ours.didDocument, theirs.didDocument, `${didUrl}: the document${both}`);
  assert.deepEqual(ours.didDocumentMetadata, theirs.didDocumentMetadata, `${didUrl}: the document metadata${both}`);
  assert.equal(ours.didResolutionMetadata.error, theirs.didResolutionMetadata.error, `${didUrl}: the error`);
  const viaHttp = await http(didUrl, accept);
  assert.deepEqual(accept ? viaHttp.body : viaHttp.body.didDocument, theirs.didDocument, `${didUrl}: over HTTP`);
  return { ours, theirs, viaHttp };
}

const controller = (identity, signer) => new EthrDidController(identity, undefined, signer, network, provider, undefined, DIDS, false);

test("did:ethr documents agree with ethr-did-resolver through owners, delegates, keys, services and revocations", async () => {
  const [alice, bob, carol, dave, relayer] = wallets;
  // An identity nobody touched: the account itself.
  const untouched = ethers.Wallet.createRandom().address;
  const { ours } = await same(did(untouched));
  assert.equal(ours.didDocument.verificationMethod.length, 1);

  const a = controller(alice.address, alice);
  const first = await a.addDelegate("veriKey", bob.address, 86400);
  await a.addDelegate("sigAuth", carol.address, 86400);
  await a.setAttribute("did/pub/Secp256k1/veriKey/hex", ethers.hexlify(ethers.randomBytes(33)), 86400);
  await a.setAttribute("did/pub/X25519/enc/base64", ethers.hexlify(ethers.randomBytes(32)), 86400);
  await a.setAttribute("did/pub/Ed25519/veriKey/base58", ethers.hexlify(ethers.randomBytes(32)), 86400);
  await a.setAttribute("did/svc/EMCNode", JSON.stringify({ uri: "https://node.example/emc", accept: ["emc/1"] }), 86400);
  await a.setAttribute("did/svc/HubService", "https://hub.example", 86400);
  let r = await same(did(alice.address));
  assert.equal(r.ours.didDocument.verificationMethod.length, 6, JSON.stringify(r.ours.didDocument));
  assert.equal(r.ours.didDocument.service.length, 2);
  assert.equal(r.ours.didDocument.keyAgreement.length, 1);

  await a.revokeDelegate("veriKey", bob.address);
  await a.revokeAttribute("did/svc/HubService", "https://hub.example");
  await a.changeOwner(dave.address);
  r = await same(did(alice.address));
  assert.equal(r.ours.didDocument.verificationMethod[0].blockchainAccountId, `eip155:${chainId}:${dave.address}`);
  assert.equal(r.ours.didDocument.service.length, 1);
  // The document as of the first change, and the metadata naming the next.
  r = await same(`${did(alice.address)}?versionId=${first.blockNumber}`);
  assert.equal(r.ours.didDocumentMetadata.versionId, String(first.blockNumber));
  assert.ok(r.ours.didDocumentMetadata.nextVersionId);
  // Representations: a bare JSON document too.
  await same(did(alice.address), "application/did+json");

  // Signed changes, relayed by someone else: the controller's own hashes.
  const e = ethers.Wallet.createRandom().connect(provider);
  const signed = controller(e.address, relayer);
  const sign = async (hash) => {
    const s = e.signingKey.sign(hash);
    return { sigV: s.v, sigR: s.r, sigS: s.s };
  };
  const exp = 86400;
  const once = await sign(await signed.createAddDelegateHash("veriKey", bob.address, exp));
  await signed.addDelegateSigned("veriKey", bob.address, exp, once);
  // The same signature again is refused by the registry: the owner's nonce moved on.
  await assert.rejects(signed.addDelegateSigned("veriKey", bob.address, exp, once));
  const svc = "https://signed.example/emc";
  await signed.setAttributeSigned("did/svc/EMCNode", svc, exp, await sign(await signed.createSetAttributeHash("did/svc/EMCNode", svc, exp)));
  await signed.revokeDelegateSigned("veriKey", bob.address, await sign(await signed.createRevokeDelegateHash("veriKey", bob.address)));
  await signed.changeOwnerSigned(carol.address, await sign(await signed.createChangeOwnerHash(carol.address)));
  r = await same(did(e.address));
  assert.equal(r.ours.didDocument.verificationMethod[0].blockchainAccountId, `eip155:${chainId}:${carol.address}`);
  assert.equal(r.ours.didDocument.service[0].serviceEndpoint, svc);
  // The old owner's signature no longer changes anything.
  await assert.rejects(signed.changeOwnerSigned(dave.address, await sign(await signed.createChangeOwnerHash(dave.address))));

  // A public-key DID: the key is in the document while the identity owns itself.
  const k = ethers.Wallet.createRandom().connect(provider);
  const keyDid = did(k.signingKey.compressedPublicKey);
  r = await same(keyDid);
  assert.ok(r.ours.didDocument.verificationMethod.some((m) => m.id === `${keyDid}#controllerKey`));

  // Deactivated: owner zero; HTTP says 410 Gone.
  const z = ethers.Wallet.createRandom().connect(provider);
  await (await wallets[0].sendTransaction({ to: z.address, value: ethers.parseEther("1") })).wait();
  await controller(z.address, z).changeOwner(ethers.ZeroAddress);
  r = await same(did(z.address));
  assert.equal(r.ours.didDocumentMetadata.deactivated, true);
  assert.equal((await http(did(z.address))).status, 410);
});

test("did:pkh and did:key resolve as their published resolvers resolve them", async () => {
  const pkh = `did:pkh:eip155:${chainId}:${wallets[1].address.toLowerCase()}`;
  for (const accept of ["application/did+json", "application/did+ld+json"]) {
    await same(pkh, accept);
    const ed = crypto.generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x;
    const edKey = `did:key:z${ethers.encodeBase58(ethers.concat(["0xed01", Buffer.from(ed, "base64url")]))}`;
    const { ours } = await same(edKey, accept);
    assert.equal(ours.didDocument.keyAgreement.length, 1, "the X25519 key it maps to");
    const secp = ethers.Wallet.createRandom().signingKey.compressedPublicKey;
    await same(`did:key:z${ethers.encodeBase58(ethers.concat(["0xe701", secp]))}`, accept);
  }
});

test("bad DIDs get error codes and the HTTP statuses of DID Resolution", async () => {
  const cases = [
    ["did:ethr:0x1:0x1111111111111111111111111111111111111111", "unknownNetwork", 404],
    [`did:ethr:${network}:0x12`, "invalidDid", 400],
    ["did:web:example.com", "methodNotSupported", 501],
    ["did:key:zXYZ", "invalidDid", 400],
  ];
  for (const [d, code, status] of cases) {
    const ours = await rpc("emc_resolveDid", [d]);
    assert.equal(ours.didResolutionMetadata.error, code, d);
    assert.equal(ours.didDocument, null);
    const viaHttp = await http(d);
    assert.equal(viaHttp.status, status, d);
    assert.equal(viaHttp.body.didResolutionMetadata.error, code);
    assert.match(viaHttp.type, /did-resolution/);
  }
  const huge = await http(`did:ethr:${"a".repeat(4000)}`);
  assert.equal(huge.status, 400);
  assert.match(huge.body.didResolutionMetadata.message, /longer than/);
});

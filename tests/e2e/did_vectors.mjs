// Writes test vectors for EMC's did:ethr document builder (crates/identity): seeded
// random ERC-1056 histories and the documents the published ethr-did-resolver builds
// from them (its own wrapDidDocument), so the Rust builder is checked against the
// reference on hundreds of histories without a chain. Run from tests/e2e:
//   node did_vectors.mjs > ../../crates/identity/src/ethr/vectors.json
import { createRequire } from 'node:module'
import { getAddress, hexlify, toUtf8String, toUtf8Bytes, zeroPadBytes } from 'ethers'

let seed = 0x5eed1056
const rand = () => {
  // xorshift32: the same vectors every run.
  seed ^= seed << 13; seed >>>= 0
  seed ^= seed >>> 17
  seed ^= seed << 5; seed >>>= 0
  return seed / 0x100000000
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)]
const bytes = (n) => Array.from({ length: n }, () => Math.floor(rand() * 256))
const b32 = (s) => zeroPadBytes(toUtf8Bytes(s).slice(0, 32), 32)

// The resolver's class is not among the package's exports; its CommonJS build is.
const require = createRequire(import.meta.url)
const { EthrDidResolver } = require(require.resolve('ethr-did-resolver').replace(/index\.js$/, 'resolver.js'))

const NOW = 1_800_000_000
const addresses = [1, 2, 3, 4].map((i) => getAddress('0x' + String(i).repeat(40)))
const delegateTypes = ['veriKey', 'sigAuth', 'veriKey', 'sigAuth', 'other', '']
const names = [
  'did/pub/Secp256k1/veriKey/hex', 'did/pub/Ed25519/veriKey/base58', 'did/pub/X25519/enc/base64',
  'did/pub/RSA/veriKey/pem', 'did/pub/Secp256k1/sigAuth', 'did/pub/Ed25519', 'did/pub/Secp256k1/veriKey/weird',
  'did/svc/HubService', 'did/svc/EMCNode', 'did/pub/bad-name', 'not/a/name', 'did/svc/Endpoint/extra/more/parts',
]
const values = () => pick([
  hexlify(new Uint8Array(bytes(33))), hexlify(new Uint8Array(bytes(32))), '0x',
  hexlify(toUtf8Bytes('https://node.example/emc')), hexlify(toUtf8Bytes('{"uri":"https://x.example","n":1}')),
  hexlify(toUtf8Bytes('-----BEGIN PUBLIC KEY-----\nMCowBQ\n-----END PUBLIC KEY-----')), '0xc3287a', '0x0000ff',
])
const validTo = () => pick(['0', String(NOW - 100), String(NOW), String(NOW + 1000), String(NOW + 1)])
const nameBytes = (pool) => (rand() < 0.05 ? hexlify(new Uint8Array([0xc3, 0x28, ...bytes(30)])) : b32(pick(pool)))

function decoded(raw) {
  try { return toUtf8String(raw).replace(/\0+$/, '') } catch { return null }
}

function history() {
  const events = []
  let block = 1
  const n = 1 + Math.floor(rand() * 14)
  for (let i = 0; i < n; i++) {
    if (rand() < 0.7) block += 1 + Math.floor(rand() * 3)
    const r = rand()
    if (r < 0.15) {
      const owner = rand() < 0.15 ? '0x0000000000000000000000000000000000000000' : pick(addresses)
      events.push({ kind: 'owner', block, owner })
    } else if (r < 0.55) {
      events.push({ kind: 'delegate', block, delegateType: nameBytes(delegateTypes), delegate: pick(addresses), validTo: validTo() })
    } else {
      events.push({ kind: 'attribute', block, name: nameBytes(names), value: values(), validTo: validTo() })
    }
  }
  return events
}

function asResolverEvents(identity, events) {
  const out = []
  for (const e of events) {
    const base = { identity, previousChange: 0n, blockNumber: e.block }
    if (e.kind === 'owner') out.push({ ...base, _eventName: 'DIDOwnerChanged', owner: e.owner })
    else if (e.kind === 'delegate') {
      const delegateType = decoded(e.delegateType)
      if (delegateType === null) continue
      out.push({ ...base, _eventName: 'DIDDelegateChanged', delegateType, delegate: e.delegate, validTo: BigInt(e.validTo) })
    } else {
      const name = decoded(e.name)
      if (name === null) continue
      out.push({ ...base, _eventName: 'DIDAttributeChanged', name, value: e.value, validTo: BigInt(e.validTo) })
    }
  }
  return out
}

const resolver = new EthrDidResolver({ networks: [{ name: 'emc', chainId: 420, rpcUrl: 'http://127.0.0.1:1' }] })
const identity = getAddress('0x' + 'ab'.repeat(20))
const key = '0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'
const vectors = []
for (let i = 0; i < 160; i++) {
  const events = history()
  const byKey = rand() < 0.2
  const address = byKey ? '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf' : identity
  const did = `did:ethr:0x1a4:${byKey ? key : identity}`
  const last = events[events.length - 1].block
  const at = rand() < 0.3 ? Math.floor(rand() * (last + 1)) : null
  const built = resolver.wrapDidDocument(did, address, byKey ? key : undefined, asResolverEvents(address, events), 420n, at ?? 'latest', BigInt(NOW))
  vectors.push({
    did, events, at, now: NOW,
    document: built.didDocument, deactivated: built.deactivated, versionId: built.versionId,
    nextVersionId: built.nextVersionId === Number.POSITIVE_INFINITY ? null : built.nextVersionId,
  })
}
process.stdout.write(JSON.stringify(vectors) + '\n')

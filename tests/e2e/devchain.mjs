// What the e2e tests share about a dev chain: its development accounts (the Hardhat
// mnemonic, which `emc node --dev` funds), the fee a receipt paid, and registering a
// computing node in the Registry with the node's own ed25519 signature.
import crypto from "node:crypto";
import { ethers } from "ethers";

export const REGISTRY = "0x0000000000000000000000000000000000001003";
const MNEMONIC = "test test test test test test test test test test test junk";

/// Development account `i` (0 to 9), connected to `provider`.
export const devWallet = (i, provider) =>
  ethers.HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).connect(provider);

/// The wei a mined transaction paid for gas.
export const fee = (rc) => rc.gasUsed * rc.gasPrice;

/// Registers a new computing node (a fresh ed25519 key) for `owner`: the node signs
/// "emc node registration v1" . chainId . owner . nodeId. Returns the node id.
export async function registerNode(provider, owner, apps = ["echo"], prices = [1n]) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync("ed25519");
  const node = "0x" + Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url").toString("hex");
  const { chainId } = await provider.getNetwork();
  const msg = ethers.concat([ethers.toUtf8Bytes("emc node registration v1"), ethers.toBeHex(chainId, 8), owner.address, node]);
  const sig = crypto.sign(null, ethers.getBytes(msg), privateKey);
  const registry = new ethers.Contract(REGISTRY, ["function register(bytes32 nodeId, bytes nodeSignature, string[] apps, uint256[] prices, string hardware)"], owner);
  const rc = await (await registry.register(node, sig, apps, prices, "test")).wait();
  return { node, rc };
}

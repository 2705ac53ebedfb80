"""web3.py with the stock ERC-721 ABI against computing sockets.

python web3_sockets.py RPC_URL

Reads every socket's owner and metadata with the standard ERC-721 (Metadata,
Enumerable) ABI, then moves one with safeTransferFrom signed by its owner (a Hardhat
development key) and reads it back. Prints one JSON object.
"""
import base64
import json
import sys

from eth_account import Account
from web3 import Web3

SOCKETS = Web3.to_checksum_address("0x0000000000000000000000000000000000001005")
KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
]


def fn(name, inputs, outputs, mutability="view"):
    return {"type": "function", "name": name, "stateMutability": mutability,
            "inputs": [{"name": f"a{i}", "type": t} for i, t in enumerate(inputs)],
            "outputs": [{"name": "", "type": t} for t in outputs]}


# The ERC-721 standard's interface, as the EIP lists it.
ERC721 = [
    fn("balanceOf", ["address"], ["uint256"]),
    fn("ownerOf", ["uint256"], ["address"]),
    fn("safeTransferFrom", ["address", "address", "uint256"], [], "payable"),
    fn("transferFrom", ["address", "address", "uint256"], [], "payable"),
    fn("approve", ["address", "uint256"], [], "payable"),
    fn("getApproved", ["uint256"], ["address"]),
    fn("isApprovedForAll", ["address", "address"], ["bool"]),
    fn("supportsInterface", ["bytes4"], ["bool"]),
    fn("name", [], ["string"]),
    fn("symbol", [], ["string"]),
    fn("tokenURI", ["uint256"], ["string"]),
    fn("totalSupply", [], ["uint256"]),
    fn("tokenByIndex", ["uint256"], ["uint256"]),
    fn("tokenOfOwnerByIndex", ["address", "uint256"], ["uint256"]),
]

w3 = Web3(Web3.HTTPProvider(sys.argv[1]))
c = w3.eth.contract(address=SOCKETS, abi=ERC721)
total = c.functions.totalSupply().call()
owners = {}
for i in range(total):
    tid = c.functions.tokenByIndex(i).call()
    owners[tid] = c.functions.ownerOf(tid).call()
uri = c.functions.tokenURI(1).call()
doc = json.loads(base64.b64decode(uri.split(",", 1)[1]))
# Move a socket held by one of the development accounts, signed by its owner.
accounts = {Account.from_key(k).address: k for k in KEYS}
tid, owner = next((t, o) for t, o in owners.items() if o in accounts)
to = Account.create().address
tx = c.functions.safeTransferFrom(owner, to, tid).build_transaction({
    "from": owner, "nonce": w3.eth.get_transaction_count(owner), "chainId": w3.eth.chain_id,
})
signed = Account.sign_transaction(tx, accounts[owner])
rc = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60)
print(json.dumps({
    "total": total,
    "name": c.functions.name().call(),
    "erc721": c.functions.supportsInterface(bytes.fromhex("80ac58cd")).call(),
    "enumerable": c.functions.supportsInterface(bytes.fromhex("780e9d63")).call(),
    "uri_name": doc["name"],
    "moved": tid,
    "status": rc.status,
    "new_owner_ok": c.functions.ownerOf(tid).call() == to,
    "balance_of_new": c.functions.balanceOf(to).call(),
    "index_of_new": c.functions.tokenOfOwnerByIndex(to, 0).call(),
}))

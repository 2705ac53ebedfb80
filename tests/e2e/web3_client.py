"""web3.py against a running EMC development node, as a script writer would use it.

Run by bin/emc/tests/clients.rs with the node's URL. Each step asserts what a user
would notice; the script prints `CONTRACT <address>` for the Rust side's proof check
and exits non-zero with the failing step's message otherwise.

Steps: a few hundred consecutive transactions from one account; the polling filter
family (block, pending, log; changes, logs, uninstall, expiry of an unknown id);
eth_getBlockReceipts; transaction counts and transactions by block and index;
eth_createAccessList and a transaction that carries its list; eth_getProof;
eth_subscribe over plain HTTP; the end-of-block system call's logs through eth_getLogs.
"""

import sys
import time

from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

URL = sys.argv[1]
w3 = Web3(Web3.HTTPProvider(URL, request_kwargs={"timeout": 60}))
# Hardhat/Anvil development accounts 1 and 2 (public keys, devnets only).
K1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
K2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
A1, A2 = Account.from_key(K1), Account.from_key(K2)
TASKS = Web3.to_checksum_address("0x0000000000000000000000000000000000001004")
STAKING = Web3.to_checksum_address("0x0000000000000000000000000000000000001001")
SYSTEM_CALLER = "0xfffffffffffffffffffffffffffffffffffffffe"
GWEI = 10**9


def step(name):
    print(f"== {name}", flush=True)


def send(acct, nonce, **tx):
    base = {
        "chainId": 31337,
        "nonce": nonce,
        "gas": 21_000,
        "maxFeePerGas": 10 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        "to": A2.address,
        "value": 1,
    }
    base.update(tx)
    signed = acct.sign_transaction(base)
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def receipt(h):
    return w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.2)


assert w3.eth.chain_id == 31337, w3.eth.chain_id
assert w3.net.peer_count == 0, "a lone development node has no peers"

step("300 consecutive transactions from one account, sent without waiting")
start = w3.eth.get_transaction_count(A1.address, "pending")
hashes = [send(A1, start + i) for i in range(300)]
last = receipt(hashes[-1])
assert last.status == 1
assert w3.eth.get_transaction_count(A1.address) == start + 300
assert all(receipt(h).status == 1 for h in hashes[:5])

step("block and pending filters")
blocks = w3.eth.filter("latest")
pending = w3.eth.filter("pending")
h = send(A1, start + 300)
receipt(h)
time.sleep(1.2)
new_blocks = blocks.get_new_entries()
assert new_blocks, "a block filter reports new blocks"
assert all(w3.eth.get_block(b).hash == b for b in new_blocks)
assert blocks.get_new_entries() == [] or all(b not in new_blocks for b in blocks.get_new_entries())
assert h in pending.get_new_entries(), "a pending filter reports pooled transactions"

step("a log filter: changes, logs, uninstall")
deposited = Web3.keccak(text="Deposited(address,uint256)")
logs = w3.eth.filter({"address": TASKS, "topics": [deposited]})
dep = send(A1, start + 301, to=TASKS, value=10**18, gas=200_000, data="0xd0e30db0")
dr = receipt(dep)
assert dr.status == 1, dr
changes = w3.eth.get_filter_changes(logs.filter_id)
assert [c["transactionHash"] for c in changes] == [dep], changes
assert w3.eth.get_filter_changes(logs.filter_id) == [], "each log is reported once"
assert [l["transactionHash"] for l in w3.eth.get_filter_logs(logs.filter_id)] == [dep]
assert w3.eth.uninstall_filter(logs.filter_id) is True
assert w3.eth.uninstall_filter(logs.filter_id) is False
try:
    w3.eth.get_filter_changes(logs.filter_id)
    raise AssertionError("an uninstalled filter answered")
except Web3RPCError as e:
    assert "filter not found" in str(e), e

step("eth_getBlockReceipts, counts and transactions by block and index")
block = w3.eth.get_block(dr.blockNumber)
rs = w3.eth.get_block_receipts(dr.blockNumber)
assert len(rs) >= len(block.transactions)
mine = [r for r in rs if r.transactionHash == dep]
assert len(mine) == 1 and mine[0] == dr, (mine, dr)
assert w3.eth.get_block_transaction_count(dr.blockNumber) == len(block.transactions)
assert w3.eth.get_block_transaction_count(block.hash) == len(block.transactions)
by_index = w3.eth.get_transaction_by_block(dr.blockNumber, dr.transactionIndex)
assert by_index.hash == dep and by_index == w3.eth.get_transaction(dep)
assert w3.eth.get_transaction_by_block(block.hash, dr.transactionIndex).hash == dep

step("eth_createAccessList, and a transaction that carries the list")
# A counter: runtime `slot0 += 1` (PUSH1 1 PUSH1 0 SLOAD ADD PUSH1 0 SSTORE STOP),
# deployed by init code that copies it out.
init = "0x600a600c600039600a6000f3" + "60016000540160005500"
cr = receipt(send(A1, start + 302, to=b"", value=0, gas=200_000, data=init))
counter = cr.contractAddress
assert counter and cr.status == 1
call = {"from": A1.address, "to": counter, "data": "0x"}
acl = w3.eth.create_access_list(call)
keys = {(i["address"].lower(), tuple(k.hex() if isinstance(k, bytes) else k for k in i["storageKeys"])) for i in acl["accessList"]}
assert any(addr == counter.lower() and len(ks) == 1 for addr, ks in keys), acl
tx = {
    "chainId": 31337,
    "nonce": start + 303,
    "gas": acl["gasUsed"] + 10_000,
    "maxFeePerGas": 10 * GWEI,
    "maxPriorityFeePerGas": GWEI,
    "to": counter,
    "value": 0,
    "data": "0x",
    "accessList": acl["accessList"],
}
ar = receipt(w3.eth.send_raw_transaction(A1.sign_transaction(tx).raw_transaction))
assert ar.status == 1 and ar.type == 2, ar
# The gas the list was reported with is what the transaction carrying it uses.
assert ar.gasUsed == acl["gasUsed"], (ar.gasUsed, acl["gasUsed"])

step("eth_getProof")
n = w3.eth.block_number
proof = w3.eth.get_proof(counter, [0], n)
assert int.from_bytes(proof["storageProof"][0]["value"], "big") == 1, proof["storageProof"][0]
assert len(proof["accountProof"]) == 1, "one JMT proof per list (docs/ARCHITECTURE.md)"
assert proof["storageHash"] == w3.eth.get_block(n).stateRoot, "storage lives in the state tree"

step("eth_subscribe over HTTP says to use a WebSocket")
r = w3.provider.make_request("eth_subscribe", ["newHeads"])
assert r["error"]["code"] == -32601 and "WebSocket" in r["error"]["message"], r

step("the end-of-block system call's logs, through eth_getLogs")
elected = Web3.keccak(text="ValidatorSetElected(uint64,address[],uint256[])")
deadline = time.time() + 30
found = []
while not found and time.time() < deadline:
    found = w3.eth.get_logs({"address": STAKING, "fromBlock": 0, "toBlock": "latest", "topics": [elected]})
    time.sleep(0.5)
assert found, "an election at an epoch's end is a log clients can find"
sysr = w3.eth.get_transaction_receipt(found[0]["transactionHash"])
assert sysr["from"].lower() == SYSTEM_CALLER and sysr["to"] == STAKING, sysr
assert sysr.gasUsed == 0 and sysr.status == 1
try:
    w3.eth.get_transaction(found[0]["transactionHash"])
    raise AssertionError("a system receipt has no transaction")
except TransactionNotFound:
    pass

print(f"CONTRACT {counter}", flush=True)
print("ok")

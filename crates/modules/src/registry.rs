//! The `Registry` system contract: computing nodes, who owns them, what they serve.
//!
//! A node is known by its id, its ed25519 node key (which is also its libp2p
//! identity, so a router can tell that a connecting peer is the node it claims to be).
//! An owner account registers a node with a signature by the node key over
//! `"emc node registration v1" . chainId . owner . nodeId` ([`registration_message`]),
//! so nobody can claim a node they do not run, and a node's key cannot be replayed on
//! another chain or for another owner. The registration lists the apps the node serves
//! with a price per unit for each, and a free-text hardware summary; the same owner may
//! register again to update them, another owner may not. Stake and proof-of-computing
//! rewards are the owner's (the staking module's computing-node role).
//!
//! Bounds: at most [`MAX_APPS`] apps of up to 64 bytes, a hardware summary up to 256
//! bytes, and [`MAX_NODES`] nodes in all; every loop is bounded by them.

use crate::kit::abi::emit;
use crate::kit::slots::{Array, Mapping};
use crate::{Metered, ModuleCall, ModuleError};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{sol, SolCall, SolInterface, SolValue};

sol! {
    /// The ABI at `REGISTRY_ADDRESS`.
    interface IRegistry {
        event NodeRegistered(bytes32 indexed nodeId, address indexed owner, string[] apps, uint256[] prices);
        event NodeRemoved(bytes32 indexed nodeId, address indexed owner);

        function register(bytes32 nodeId, bytes nodeSignature, string[] apps, uint256[] prices, string hardware) external;
        function deregister(bytes32 nodeId) external;

        function nodeInfo(bytes32 nodeId) external view returns (address owner, string[] apps, uint256[] prices, string hardware, uint64 registeredAt);
        function ownerOf(bytes32 nodeId) external view returns (address);
        function nodes() external view returns (bytes32[] memory);
    }
}

pub const MAX_APPS: usize = 32;
pub const MAX_NODES: u64 = 4_096;
const MAX_NAME: usize = 64;
const MAX_HARDWARE: usize = 256;

/// Storage, in Solidity's layout.
const OWNER: Mapping<B256, Address> = Mapping::at(0);
/// `[node]` = the info blob's length; its words from `keccak(slot)`, as Solidity lays
/// out `bytes`.
const INFO: Mapping<B256, u64> = Mapping::at(1);
const AT: Mapping<B256, u64> = Mapping::at(2);
const NODES: Array<B256> = Array::at(3);
/// `[node]` = its index in `NODES` + 1.
const INDEX: Mapping<B256, u64> = Mapping::at(4);

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Registry", why)
}

/// What a node key signs to let `owner` register it on chain `chain_id`.
pub fn registration_message(chain_id: u64, owner: Address, node: B256) -> Vec<u8> {
    let mut m = b"emc node registration v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(owner.as_slice());
    m.extend_from_slice(node.as_slice());
    m
}

/// The `register` call for node `key` owned by `owner` on chain `chain_id`, serving
/// `apps` at one wei a unit, signed by the node (for tests, benchmarks and tools).
pub fn register_call(
    chain_id: u64,
    owner: Address,
    key: &ed25519_consensus::SigningKey,
    apps: &[&str],
) -> IRegistry::registerCall {
    let node = B256::from(key.verification_key().to_bytes());
    IRegistry::registerCall {
        nodeId: node,
        nodeSignature: key
            .sign(&registration_message(chain_id, owner, node))
            .to_bytes()
            .to_vec()
            .into(),
        apps: apps.iter().map(|a| a.to_string()).collect(),
        prices: vec![U256::from(1); apps.len()],
        hardware: String::new(),
    }
}

pub struct RegistryModule;

impl RegistryModule {
    pub fn call(m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        if !call.value.is_zero() {
            return Err(revert("not payable"));
        }
        let decoded = IRegistry::IRegistryCalls::abi_decode(call.input)
            .map_err(|_| revert("unknown function or bad arguments"))?;
        use IRegistry::IRegistryCalls as C;
        let writes = matches!(decoded, C::register(_) | C::deregister(_));
        if writes && call.is_static {
            return Err(revert("state change in a static call"));
        }
        Ok(match decoded {
            C::register(c) => {
                register(m, call.caller, &c)?;
                Bytes::new()
            }
            C::deregister(c) => {
                let owner = owner_of(m, c.nodeId)?;
                if owner != call.caller {
                    return Err(revert("only the node's owner may remove it"));
                }
                remove(m, c.nodeId)?;
                emit(
                    m,
                    IRegistry::NodeRemoved {
                        nodeId: c.nodeId,
                        owner,
                    },
                );
                Bytes::new()
            }
            C::nodeInfo(c) => {
                let owner = owner_of(m, c.nodeId)?;
                let (apps, prices, hardware) = if owner.is_zero() {
                    (vec![], vec![], String::new())
                } else {
                    read_info(m, c.nodeId)?
                };
                let at = AT.get(m, &c.nodeId)?;
                IRegistry::nodeInfoCall::abi_encode_returns(&IRegistry::nodeInfoReturn {
                    owner,
                    apps,
                    prices,
                    hardware,
                    registeredAt: at,
                })
                .into()
            }
            C::ownerOf(c) => {
                IRegistry::ownerOfCall::abi_encode_returns(&owner_of(m, c.nodeId)?).into()
            }
            C::nodes(_) => IRegistry::nodesCall::abi_encode_returns(&nodes(m)?).into(),
        })
    }

    /// The owner of `node` and its price per unit for `app`, for another module; `None`
    /// when the node is not registered or does not serve the app.
    pub fn price(
        m: &mut Metered<'_>,
        node: B256,
        app: &str,
    ) -> Result<Option<(Address, U256)>, ModuleError> {
        let owner = Self::owner(m, node)?;
        if owner.is_zero() {
            return Ok(None);
        }
        let (apps, prices, _) = read_info(m, node)?;
        Ok(apps
            .iter()
            .position(|a| a == app)
            .and_then(|i| prices.get(i).map(|p| (owner, *p))))
    }

    /// The owner of `node` (zero if unregistered), for another module.
    pub fn owner(m: &mut Metered<'_>, node: B256) -> Result<Address, ModuleError> {
        OWNER.get_in(m, crate::REGISTRY_ADDRESS, &node)
    }
}

fn owner_of(m: &mut Metered<'_>, node: B256) -> Result<Address, ModuleError> {
    OWNER.get(m, &node)
}

fn nodes(m: &mut Metered<'_>) -> Result<Vec<B256>, ModuleError> {
    let n = NODES.len(m)?.min(MAX_NODES);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        out.extend(NODES.get(m, i)?);
    }
    Ok(out)
}

fn register(
    m: &mut Metered<'_>,
    owner: Address,
    c: &IRegistry::registerCall,
) -> Result<(), ModuleError> {
    if c.apps.is_empty() || c.apps.len() > MAX_APPS || c.apps.len() != c.prices.len() {
        return Err(revert(format!("1 to {MAX_APPS} apps, each with a price")));
    }
    if c.apps.iter().any(|a| a.is_empty() || a.len() > MAX_NAME) {
        return Err(revert(format!("app names are 1 to {MAX_NAME} bytes")));
    }
    if c.hardware.len() > MAX_HARDWARE {
        return Err(revert(format!(
            "the hardware summary is at most {MAX_HARDWARE} bytes"
        )));
    }
    let vk = ed25519_consensus::VerificationKey::try_from(c.nodeId.0)
        .map_err(|_| revert("the node id is not an ed25519 key"))?;
    let sig: [u8; 64] = c
        .nodeSignature
        .as_ref()
        .try_into()
        .map_err(|_| revert("the node signature is 64 bytes"))?;
    m.charge_signature()?;
    vk.verify(
        &ed25519_consensus::Signature::from(sig),
        &registration_message(m.host().chain_id(), owner, c.nodeId),
    )
    .map_err(|_| revert("the node key did not sign this registration"))?;
    let current = owner_of(m, c.nodeId)?;
    if !current.is_zero() && current != owner {
        return Err(revert("the node is registered by another owner"));
    }
    if current.is_zero() {
        if NODES.len(m)? >= MAX_NODES {
            return Err(revert(format!("the registry is full ({MAX_NODES} nodes)")));
        }
        let i = NODES.push(m, &c.nodeId, MAX_NODES)?;
        INDEX.set(m, &c.nodeId, &(i + 1))?;
        OWNER.set(m, &c.nodeId, &owner)?;
    }
    let height = m.host().height();
    AT.set(m, &c.nodeId, &height)?;
    write_info(
        m,
        c.nodeId,
        &(c.apps.clone(), c.prices.clone(), c.hardware.clone()).abi_encode(),
    )?;
    emit(
        m,
        IRegistry::NodeRegistered {
            nodeId: c.nodeId,
            owner,
            apps: c.apps.clone(),
            prices: c.prices.clone(),
        },
    );
    Ok(())
}

fn remove(m: &mut Metered<'_>, node: B256) -> Result<(), ModuleError> {
    let n = NODES.len(m)?;
    let idx = INDEX.get(m, &node)?;
    if idx == 0 || n == 0 {
        return Err(revert("no such node"));
    }
    // The last node moves into the freed place.
    if let Some(last) = NODES.get(m, n - 1)? {
        INDEX.set(m, &last, &idx)?;
    }
    NODES.swap_remove(m, idx - 1)?;
    INDEX.set(m, &node, &0)?;
    OWNER.set(m, &node, &Address::ZERO)?;
    INFO.set(m, &node, &0)
}

fn blob_slot(node: B256, i: u64) -> U256 {
    let base = INFO.slot(&node);
    U256::from_be_bytes(keccak256(base.to_be_bytes::<32>()).0).wrapping_add(U256::from(i))
}

fn write_info(m: &mut Metered<'_>, node: B256, blob: &[u8]) -> Result<(), ModuleError> {
    INFO.set(m, &node, &(blob.len() as u64))?;
    for (i, chunk) in blob.chunks(32).enumerate() {
        let mut w = [0u8; 32];
        w[..chunk.len()].copy_from_slice(chunk);
        m.sstore(blob_slot(node, i as u64), U256::from_be_bytes(w))?;
    }
    Ok(())
}

type Info = (Vec<String>, Vec<U256>, String);

fn read_info(m: &mut Metered<'_>, node: B256) -> Result<Info, ModuleError> {
    // Written by `register` within the bounds above, so at most a few KiB. Read at the
    // registry's address, so other modules read it too.
    let at = crate::REGISTRY_ADDRESS;
    let len = INFO.get_in(m, at, &node)?.min(16 * 1024) as usize;
    let mut blob = Vec::with_capacity(len.div_ceil(32) * 32);
    for i in 0..len.div_ceil(32) {
        blob.extend_from_slice(
            &m.sload_at(at, blob_slot(node, i as u64))?
                .to_be_bytes::<32>(),
        );
    }
    blob.truncate(len);
    Info::abi_decode(&blob).map_err(|e| ModuleError::Host(format!("registry blob: {e}")))
}

impl crate::kit::SystemModule for RegistryModule {
    fn address(&self) -> Address {
        crate::REGISTRY_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Registry"
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        RegistryModule::call(m, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemHost;
    use crate::{dispatch, REGISTRY_ADDRESS};

    fn call(h: &mut MemHost, from: Address, input: Vec<u8>) -> Result<Bytes, ModuleError> {
        let c = ModuleCall {
            caller: from,
            value: U256::ZERO,
            input: &input,
            is_static: false,
        };
        dispatch(REGISTRY_ADDRESS, h, &c, 10_000_000)
            .expect("module")
            .out
    }

    fn reg(
        key: &ed25519_consensus::SigningKey,
        owner: Address,
        chain: u64,
        apps: &[&str],
    ) -> Vec<u8> {
        let node = B256::from(key.verification_key().to_bytes());
        IRegistry::registerCall {
            nodeId: node,
            nodeSignature: key
                .sign(&registration_message(chain, owner, node))
                .to_bytes()
                .to_vec()
                .into(),
            apps: apps.iter().map(|s| s.to_string()).collect(),
            prices: apps.iter().map(|_| U256::from(5)).collect(),
            hardware: "2 cores, 24 GiB".into(),
        }
        .abi_encode()
    }

    #[test]
    fn owners_register_update_and_remove_their_nodes_only() {
        let mut h = MemHost::new(REGISTRY_ADDRESS);
        let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb0));
        let k1 = ed25519_consensus::SigningKey::from([1u8; 32]);
        let k2 = ed25519_consensus::SigningKey::from([2u8; 32]);
        let n1 = B256::from(k1.verification_key().to_bytes());
        call(&mut h, alice, reg(&k1, alice, 42, &["embed", "chat"])).expect("registers");
        call(&mut h, bob, reg(&k2, bob, 42, &["sd"])).expect("registers");
        // Bob cannot take Alice's node, even with a signature made for him.
        let e = call(&mut h, bob, reg(&k1, bob, 42, &["x"])).expect_err("taken");
        assert!(e.to_string().contains("another owner"), "{e}");
        // A signature for another owner or chain does not verify.
        let e = call(&mut h, bob, reg(&k2, alice, 42, &["sd"])).expect_err("wrong owner");
        assert!(e.to_string().contains("did not sign"), "{e}");
        let e = call(&mut h, bob, reg(&k2, bob, 7, &["sd"])).expect_err("wrong chain");
        assert!(e.to_string().contains("did not sign"), "{e}");
        // Alice updates her apps.
        call(&mut h, alice, reg(&k1, alice, 42, &["embed"])).expect("updates");
        let out = call(
            &mut h,
            bob,
            IRegistry::nodeInfoCall { nodeId: n1 }.abi_encode(),
        )
        .expect("info");
        let info = IRegistry::nodeInfoCall::abi_decode_returns(&out).expect("decodes");
        assert_eq!(
            (info.owner, info.apps.clone(), info.hardware.as_str()),
            (alice, vec!["embed".to_string()], "2 cores, 24 GiB")
        );
        let list = |h: &mut MemHost| {
            IRegistry::nodesCall::abi_decode_returns(
                &call(h, alice, IRegistry::nodesCall {}.abi_encode()).expect("nodes"),
            )
            .expect("decodes")
        };
        assert_eq!(list(&mut h).len(), 2);
        assert!(call(
            &mut h,
            bob,
            IRegistry::deregisterCall { nodeId: n1 }.abi_encode()
        )
        .is_err());
        call(
            &mut h,
            alice,
            IRegistry::deregisterCall { nodeId: n1 }.abi_encode(),
        )
        .expect("removes");
        assert_eq!(
            list(&mut h),
            vec![B256::from(k2.verification_key().to_bytes())]
        );
        let out = call(
            &mut h,
            bob,
            IRegistry::ownerOfCall { nodeId: n1 }.abi_encode(),
        )
        .expect("owner");
        assert_eq!(
            IRegistry::ownerOfCall::abi_decode_returns(&out).expect("decodes"),
            Address::ZERO
        );
    }

    #[test]
    fn bad_registrations_are_refused_with_reasons() {
        let mut h = MemHost::new(REGISTRY_ADDRESS);
        let a = Address::repeat_byte(1);
        let k = ed25519_consensus::SigningKey::from([3u8; 32]);
        let e = call(&mut h, a, reg(&k, a, 42, &[])).expect_err("no apps");
        assert!(e.to_string().contains("apps"), "{e}");
        let long = "x".repeat(65);
        let e = call(&mut h, a, reg(&k, a, 42, &[long.as_str()])).expect_err("long name");
        assert!(e.to_string().contains("1 to 64 bytes"), "{e}");
        let mut bad_sig =
            IRegistry::registerCall::abi_decode(&reg(&k, a, 42, &["a"])).expect("decodes");
        bad_sig.nodeSignature = vec![0u8; 10].into();
        let e = call(&mut h, a, bad_sig.abi_encode()).expect_err("short sig");
        assert!(e.to_string().contains("64 bytes"), "{e}");
    }
}

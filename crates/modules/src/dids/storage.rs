//! The DID registry's storage, in ERC-1056's order, so `eth_getStorageAt` reads what
//! it reads on the Solidity registry.

use crate::kit::slots::{mapped, Key, Mapping};
use alloy_primitives::{Address, B256, U256};

/// `mapping(address => address) owners` (zero: the identity owns itself).
pub const OWNERS: Mapping<Address, Address> = Mapping::at(0);
/// Slot of `mapping(address => mapping(bytes32 => mapping(address => uint))) delegates`.
const DELEGATES: u64 = 1;
/// `mapping(address => uint) changed`: the block of the identity's last change.
pub const CHANGED: Mapping<Address, U256> = Mapping::at(2);
/// `mapping(address => uint) nonce`, per signer of the signed variants.
pub const NONCE: Mapping<Address, U256> = Mapping::at(3);

/// `delegates[identity][type_hash][delegate]`: until when the delegate is valid.
pub fn delegate_slot(identity: Address, type_hash: B256, delegate: Address) -> U256 {
    let by_identity = mapped(U256::from(DELEGATES), identity.key());
    mapped(mapped(by_identity, type_hash), delegate.key())
}

//! The module kit, shown by adding a module: the toy [`counter::Counter`] is one
//! folder and one table line, and runs through the kit's dispatch, genesis and typed
//! storage like the chain's own modules.

mod counter;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use counter::{Counter, ICounter, COUNTER_ADDRESS};
use emc_modules::kit::{self, SystemModule};
use emc_modules::{Loaded, ModuleCall, ModuleError, ModuleHost, Stored, MODULES};
use std::collections::BTreeMap;

/// The chain's table plus the toy: the one line a new module takes.
fn table() -> Vec<&'static dyn SystemModule> {
    MODULES
        .iter()
        .copied()
        .chain([&Counter as &dyn SystemModule])
        .collect()
}

/// Storage per module and logs, in memory (the EVM's journal does this for real).
#[derive(Default)]
struct Host {
    me: Address,
    storage: BTreeMap<(Address, U256), U256>,
    logs: Vec<(Vec<B256>, Bytes)>,
}

impl ModuleHost for Host {
    fn sload(&mut self, slot: U256) -> Result<Loaded, ModuleError> {
        let me = self.me;
        self.sload_at(me, slot)
    }
    fn sstore(&mut self, slot: U256, value: U256) -> Result<Stored, ModuleError> {
        let me = self.me;
        self.sstore_at(me, slot, value)
    }
    fn sload_at(&mut self, module: Address, slot: U256) -> Result<Loaded, ModuleError> {
        let value = self
            .storage
            .get(&(module, slot))
            .copied()
            .unwrap_or_default();
        // Every access is cold here: this host meters the most a call can cost.
        Ok(Loaded { value, cold: true })
    }
    fn sstore_at(
        &mut self,
        module: Address,
        slot: U256,
        value: U256,
    ) -> Result<Stored, ModuleError> {
        let present = self
            .storage
            .insert((module, slot), value)
            .unwrap_or_default();
        Ok(Stored {
            original: present,
            present,
            cold: true,
        })
    }
    fn pay(&mut self, _: Address, _: U256) -> Result<(), ModuleError> {
        Err(ModuleError::Host("no balances here".into()))
    }
    fn mint(&mut self, _: Address, _: U256) -> Result<(), ModuleError> {
        Err(ModuleError::Host("no balances here".into()))
    }
    fn burn(&mut self, _: U256) -> Result<(), ModuleError> {
        Err(ModuleError::Host("no balances here".into()))
    }
    fn emit(&mut self, topics: Vec<B256>, data: Bytes) {
        self.logs.push((topics, data));
    }
    fn switch_to(&mut self, module: Address) -> Address {
        std::mem::replace(&mut self.me, module)
    }
    fn chain_id(&self) -> u64 {
        42
    }
    fn height(&self) -> u64 {
        1
    }
    fn timestamp(&self) -> u64 {
        1_800_000_000
    }
}

fn call(host: &mut Host, from: Address, value: U256, input: Vec<u8>) -> Result<Bytes, String> {
    let table = table();
    host.me = COUNTER_ADDRESS;
    let c = ModuleCall {
        caller: from,
        value,
        input: &input,
        is_static: false,
    };
    let d = emc_modules::dispatch_in(&table, COUNTER_ADDRESS, host, &c, 1_000_000)
        .expect("the table has the toy");
    d.out.map_err(|e| e.to_string())
}

/// Solidity's slot for `mapping(address => ...)` at `slot`, computed here by hand.
fn solidity_map(slot: u64, key: B256) -> U256 {
    let mut b = key.to_vec();
    b.extend_from_slice(&U256::from(slot).to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(b).0)
}

#[test]
fn a_toy_module_takes_one_folder_and_one_table_line() {
    let table = table();
    kit::check(&table).expect("a valid table");
    assert!(kit::find(&table, COUNTER_ADDRESS).is_some());
    assert!(
        kit::find(MODULES, COUNTER_ADDRESS).is_none(),
        "the chain's own table is untouched"
    );

    // Genesis, through the kit.
    let mut host = Host::default();
    let g = emc_types::Genesis::dev(
        emc_types::GenesisValidator {
            address: Address::repeat_byte(0xa0),
            consensus_key: B256::repeat_byte(1),
            power: 1,
        },
        &[],
        U256::ZERO,
    );
    for m in &table {
        for (slot, v) in m.genesis(&g).storage {
            host.storage.insert((m.address(), slot), v);
        }
    }
    let total = |h: &mut Host| {
        let out = call(
            h,
            Address::ZERO,
            U256::ZERO,
            ICounter::totalCall {}.abi_encode(),
        )
        .unwrap();
        ICounter::totalCall::abi_decode_returns(&out).unwrap()
    };
    assert_eq!(total(&mut host), 100, "genesis storage");

    // Calls, storage in Solidity's layout, events.
    let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
    for who in [a, a, b] {
        call(
            &mut host,
            who,
            U256::ZERO,
            ICounter::countCall {}.abi_encode(),
        )
        .expect("counts");
    }
    assert_eq!(total(&mut host), 103);
    let slot = solidity_map(1, a.into_word());
    assert_eq!(
        host.storage[&(COUNTER_ADDRESS, slot)],
        U256::from(2),
        "mapping slot"
    );
    let (topics, data) = host.logs.last().expect("an event");
    let ev = ICounter::Counted::decode_raw_log(topics.iter().copied(), data).expect("decodes");
    assert_eq!((ev.who, ev.total), (b, 103));
    let out = call(
        &mut host,
        a,
        U256::ZERO,
        ICounter::countersCall {}.abi_encode(),
    )
    .unwrap();
    assert_eq!(
        ICounter::countersCall::abi_decode_returns(&out).unwrap(),
        vec![a, b]
    );
    let arr0 = U256::from_be_bytes(keccak256(U256::from(3).to_be_bytes::<32>()).0);
    assert_eq!(
        host.storage[&(COUNTER_ADDRESS, arr0)],
        U256::from_be_bytes(a.into_word().0)
    );

    // A double mapping, at Solidity's nested slot.
    call(
        &mut host,
        a,
        U256::ZERO,
        ICounter::allowCall {
            friend: b,
            yes: true,
        }
        .abi_encode(),
    )
    .unwrap();
    let nested = {
        let inner = solidity_map(2, a.into_word());
        let mut buf = b.into_word().to_vec();
        buf.extend_from_slice(&inner.to_be_bytes::<32>());
        U256::from_be_bytes(keccak256(buf).0)
    };
    assert_eq!(host.storage[&(COUNTER_ADDRESS, nested)], U256::from(1));

    // A call into another module of the table.
    let out = call(
        &mut host,
        a,
        U256::ZERO,
        ICounter::chainIdSeenCall {}.abi_encode(),
    )
    .unwrap();
    assert_eq!(
        ICounter::chainIdSeenCall::abi_decode_returns(&out).unwrap(),
        U256::from(42)
    );

    // Reverts name the module and say why.
    let e = call(
        &mut host,
        a,
        U256::from(1),
        ICounter::countCall {}.abi_encode(),
    )
    .unwrap_err();
    assert_eq!(e, "revert: Counter: not payable");
    let e = call(&mut host, a, U256::ZERO, vec![1, 2, 3, 4]).unwrap_err();
    assert!(e.contains("Counter: unknown function"), "{e}");
}

#[test]
fn end_of_block_hooks_run_in_table_order_and_epoch_hooks_at_an_epochs_last_block() {
    let table = table();
    let end = |height| kit::BlockEnd {
        height,
        epoch_blocks: 10,
        proposer: Address::repeat_byte(9),
        signers: Bytes::new(),
    };
    let names = |h| -> Vec<&str> {
        kit::end_of_block_calls(&table, &end(h))
            .into_iter()
            .map(|(_, name, _)| name)
            .collect()
    };
    // Staking's onBlock, the Market's clearing, then the toy's count, every block; the
    // toy's reset only at the last block of an epoch (10, 20, ...), after every
    // end-of-block call.
    assert_eq!(names(9), vec!["Staking", "Market", "Counter"]);
    assert_eq!(names(10), vec!["Staking", "Market", "Counter", "Counter"]);
    assert_eq!(names(11), vec!["Staking", "Market", "Counter"]);
    assert_eq!(end(20).ends_epoch(), Some(emc_types::Epoch(1)));
    assert_eq!(end(0).ends_epoch(), None, "genesis ends no epoch");
    let calls = kit::end_of_block_calls(&table, &end(10));
    let (addr, _, reset) = calls.last().expect("the epoch hook");
    assert_eq!(*addr, COUNTER_ADDRESS);
    assert_eq!(reset[..4], ICounter::resetCall::SELECTOR);
    // The chain's own table: staking's hook and the market's, and no epoch hook yet.
    let own: Vec<_> = kit::end_of_block_calls(MODULES, &end(10))
        .into_iter()
        .map(|(a, _, _)| a)
        .collect();
    assert_eq!(
        own,
        vec![emc_modules::STAKING_ADDRESS, emc_modules::MARKET_ADDRESS]
    );
    // The hook is the chain's only: anyone else calling reset is refused.
    let mut host = Host::default();
    let e = call(
        &mut host,
        Address::repeat_byte(1),
        U256::ZERO,
        ICounter::resetCall { epoch: 1 }.abi_encode(),
    )
    .unwrap_err();
    assert!(e.contains("called by the chain only"), "{e}");
}

#[test]
fn a_bad_table_is_refused() {
    let twice: Vec<&dyn SystemModule> = vec![&Counter, &Counter];
    assert!(kit::check(&twice).unwrap_err().contains("repeated"));
    kit::check(MODULES).expect("the chain's table is valid");
}

/// A panic in module code is a failed call with the module's name and the panic's
/// message, not a crash of the node that runs it.
#[test]
fn a_panicking_module_fails_the_call_instead_of_the_node() {
    let mut host = Host::default();
    let e = call(
        &mut host,
        Address::repeat_byte(1),
        U256::ZERO,
        ICounter::boomCall {}.abi_encode(),
    )
    .unwrap_err();
    assert!(
        e.contains("Counter: internal error (a bug in the toy at total 1)"),
        "{e}"
    );
    // The module still serves the next call.
    call(
        &mut host,
        Address::repeat_byte(1),
        U256::ZERO,
        ICounter::countCall {}.abi_encode(),
    )
    .expect("counts");
}

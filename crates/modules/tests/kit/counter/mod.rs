//! A toy module built with the kit alone, as a new module would be: its ABI, its
//! typed storage, its calls. (It lives in this folder; the test adds it to a table
//! with one line.)

use alloy_primitives::{address, Address, Bytes, U256};
use alloy_sol_types::{sol, SolCall, SolInterface};
use emc_modules::kit::abi::{emit, revert};
use emc_modules::kit::slots::{Array, DoubleMapping, Mapping, Value};
use emc_modules::kit::{BlockEnd, ModuleGenesis, SystemModule};
use emc_modules::{Metered, ModuleCall, ModuleError};
use emc_types::Epoch;

pub const COUNTER_ADDRESS: Address = address!("0x00000000000000000000000000000000000010ff");

sol! {
    #[sol(all_derives)]
    interface ICounter {
        event Counted(address indexed who, uint64 total);
        function count() external;
        function total() external view returns (uint64);
        function countOf(address who) external view returns (uint64);
        function allow(address friend, bool yes) external;
        function allowed(address who, address friend) external view returns (bool);
        function counters() external view returns (address[] memory);
        function chainIdSeen() external view returns (uint256);
        function reset(uint64 epoch) external;
        /// A bug: counts, then panics.
        function boom() external;
    }
}

/// Storage, as a Solidity contract would declare it, in this order.
const TOTAL: Value<u64> = Value::at(0);
const BY: Mapping<Address, u64> = Mapping::at(1);
const ALLOWED: DoubleMapping<Address, Address, bool> = DoubleMapping::at(2);
const COUNTERS: Array<Address> = Array::at(3);
/// Most distinct counters kept.
const MAX_COUNTERS: u64 = 16;

pub struct Counter;

impl SystemModule for Counter {
    fn address(&self) -> Address {
        COUNTER_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Counter"
    }

    fn genesis(&self, _g: &emc_types::Genesis) -> ModuleGenesis {
        // Starts at 100, as a genesis parameter would set it.
        ModuleGenesis {
            storage: [(TOTAL.slot(), U256::from(100))].into(),
            balance: None,
        }
    }

    /// Counts once more at every block's end, as a module with a hook would.
    fn end_block(&self, _end: &BlockEnd) -> Option<Bytes> {
        Some(ICounter::countCall {}.abi_encode().into())
    }

    /// Resets the total at each epoch's end.
    fn end_epoch(&self, epoch: Epoch) -> Option<Bytes> {
        Some(ICounter::resetCall { epoch: epoch.0 }.abi_encode().into())
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use ICounter::ICounterCalls as C;
        if !call.value.is_zero() {
            return Err(revert(self.name(), "not payable"));
        }
        let c = C::abi_decode(call.input)
            .map_err(|_| revert(self.name(), "unknown function or bad arguments"))?;
        Ok(match c {
            C::count(_) => {
                let total = TOTAL.get(m)? + 1;
                TOTAL.set(m, &total)?;
                let mine = BY.get(m, &call.caller)?;
                if mine == 0 {
                    COUNTERS.push(m, &call.caller, MAX_COUNTERS)?;
                }
                BY.set(m, &call.caller, &(mine + 1))?;
                emit(
                    m,
                    ICounter::Counted {
                        who: call.caller,
                        total,
                    },
                );
                Bytes::new()
            }
            C::total(_) => ICounter::totalCall::abi_encode_returns(&TOTAL.get(m)?).into(),
            C::countOf(c) => ICounter::countOfCall::abi_encode_returns(&BY.get(m, &c.who)?).into(),
            C::allow(c) => {
                ALLOWED.set(m, &call.caller, &c.friend, &c.yes)?;
                Bytes::new()
            }
            C::allowed(c) => {
                let yes = ALLOWED.get(m, &c.who, &c.friend)?;
                ICounter::allowedCall::abi_encode_returns(&yes).into()
            }
            C::counters(_) => {
                let mut out = Vec::new();
                for i in 0..COUNTERS.len(m)?.min(MAX_COUNTERS) {
                    out.extend(COUNTERS.get(m, i)?);
                }
                ICounter::countersCall::abi_encode_returns(&out).into()
            }
            C::reset(_) => {
                if call.caller != emc_modules::SYSTEM_CALLER {
                    return Err(revert(self.name(), "reset is called by the chain only"));
                }
                TOTAL.set(m, &0)?;
                Bytes::new()
            }
            C::boom(_) => {
                let total = TOTAL.get(m)? + 1;
                TOTAL.set(m, &total)?;
                panic!("a bug in the toy at total {total}")
            }
            C::chainIdSeen(_) => {
                // A call into another module, as CALL would make it.
                let input = emc_modules::chain::IChain::chainIdCall {}.abi_encode();
                let out = m.call_module(emc_modules::CHAIN_ADDRESS, &input)?;
                let id = emc_modules::chain::IChain::chainIdCall::abi_decode_returns(&out)
                    .map_err(|_| revert(self.name(), "the chain module answered oddly"))?;
                ICounter::chainIdSeenCall::abi_encode_returns(&id).into()
            }
        })
    }
}

//! A module that calls EVM contracts, through its trampoline, on a real revm: a toy
//! `Bell` module rings a contract (`onRing`) the way ERC-721's `safeTransferFrom`
//! calls `onERC721Received`. Receivers are contracts of a few instructions.

use alloy_primitives::{address, Address, Bytes, U256};
use alloy_sol_types::{sol, SolCall, SolInterface};
use common::{reason, Evm};
use emc_modules::kit::abi::revert;
use emc_modules::kit::callout::{self, asm, CallOut};
use emc_modules::kit::slots::Value;
use emc_modules::kit::SystemModule;
use emc_modules::{Metered, ModuleCall, ModuleError};
use revm::context_interface::result::{ExecutionResult, Output};

mod common;

const BELL: Address = address!("0x0000000000000000000000000000000000001f05");
const USER: Address = address!("0x00000000000000000000000000000000000a11ce");

sol! {
    interface IBell {
        function ring(address target) external payable;
        function fail() external;
        function rings() external view returns (uint256);
        function lastCaller() external view returns (address);
        function paid() external view returns (uint256);
    }
    interface IListener {
        function onRing(address from) external returns (bytes4);
    }
}

const RINGS: Value<U256> = Value::at(0);
const LAST: Value<Address> = Value::at(1);
const PAID: Value<U256> = Value::at(2);

struct Bell;

impl SystemModule for Bell {
    fn address(&self) -> Address {
        BELL
    }
    fn name(&self) -> &'static str {
        "Bell"
    }
    fn calls_out(&self) -> bool {
        true
    }
    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use IBell::IBellCalls as C;
        let c = C::abi_decode(call.input).map_err(|_| revert("Bell", "bad call"))?;
        let word = |v: U256| Bytes::from(v.to_be_bytes::<32>().to_vec());
        Ok(match c {
            C::ring(r) => {
                let rings = RINGS.get(m)? + U256::from(1);
                RINGS.set(m, &rings)?;
                LAST.set(m, &call.caller)?;
                let paid = PAID.get(m)? + call.value;
                PAID.set(m, &paid)?;
                m.call_out(CallOut {
                    target: r.target,
                    data: IListener::onRingCall { from: call.caller }
                        .abi_encode()
                        .into(),
                    expected: IListener::onRingCall::SELECTOR,
                    refusal: emc_modules::revert_data("Bell: not a listener"),
                })?;
                Bytes::new()
            }
            C::fail(_) => return Err(revert("Bell", "failed on purpose")),
            C::rings(_) => word(RINGS.get(m)?),
            C::lastCaller(_) => word(U256::from_be_bytes(LAST.get(m)?.into_word().0)),
            C::paid(_) => word(PAID.get(m)?),
        })
    }
}

/// A module without call-outs: a precompile at its address, answering its caller.
struct Echo;
const ECHO: Address = address!("0x0000000000000000000000000000000000001f06");

impl SystemModule for Echo {
    fn address(&self) -> Address {
        ECHO
    }
    fn name(&self) -> &'static str {
        "Echo"
    }
    fn call(&self, _m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        Ok(call.caller.into_word().to_vec().into())
    }
}

static TABLE: &[&dyn SystemModule] = &[&Bell, &Echo];

struct World {
    evm: Evm,
}

impl World {
    fn new() -> Self {
        let mut evm = Evm::new(TABLE, 1);
        evm.fund(USER, U256::from(10u128.pow(20)));
        World { evm }
    }

    fn deploy(&mut self, at: Address, code: Bytes) {
        self.evm.deploy(at, code)
    }

    fn send(&mut self, to: Address, value: u64, data: Vec<u8>) -> ExecutionResult {
        self.evm.send(USER, to, value, data)
    }

    fn ring(&mut self, target: Address) -> ExecutionResult {
        self.send(BELL, 0, IBell::ringCall { target }.abi_encode())
    }

    fn view(&mut self, data: Vec<u8>) -> U256 {
        match self.send(BELL, 0, data) {
            ExecutionResult::Success {
                output: Output::Call(b),
                ..
            } => U256::from_be_slice(&b),
            other => panic!("view failed: {other:?}"),
        }
    }

    fn rings(&mut self) -> U256 {
        self.view(IBell::ringsCall {}.abi_encode())
    }

    fn storage(&self, a: Address, slot: u64) -> U256 {
        self.evm.storage(a, slot)
    }

    fn balance(&self, a: Address) -> U256 {
        self.evm.balance(a)
    }
}

/// Accepts, and records who called it (slot 0) and the `from` it was told (slot 1).
fn listener() -> Bytes {
    use asm::Op::*;
    let mut p = asm::Program::default();
    p.ops(&[CALLER, PUSH0, SSTORE])
        .push(4)
        .ops(&[CALLDATALOAD])
        .push(1)
        .ops(&[SSTORE])
        .return_word(&IListener::onRingCall::SELECTOR);
    p.assemble()
}

#[test]
fn a_listener_is_called_from_the_module_and_its_answer_checked() {
    let mut w = World::new();
    let l = Address::repeat_byte(0x11);
    w.deploy(l, listener());
    let r = w.ring(l);
    assert!(r.is_success(), "{r:?}");
    assert_eq!(w.rings(), U256::from(1));
    // The listener was called by the module's address and told the sender.
    let word = |a: Address| U256::from_be_bytes(a.into_word().0);
    assert_eq!(w.storage(l, 0), word(BELL));
    assert_eq!(w.storage(l, 1), word(USER));
    // The module saw the transaction's sender, not its trampoline.
    let last = w.view(IBell::lastCallerCall {}.abi_encode());
    assert_eq!(last, U256::from_be_bytes(USER.into_word().0));
}

#[test]
fn an_account_without_code_is_not_called() {
    let mut w = World::new();
    assert!(w.ring(Address::repeat_byte(0x22)).is_success());
    assert_eq!(w.rings(), U256::from(1));
}

#[test]
fn a_wrong_answer_or_an_empty_revert_is_refused_and_undoes_the_module() {
    let mut w = World::new();
    let wrong = Address::repeat_byte(0x33);
    w.deploy(
        wrong,
        asm::Program::default()
            .return_word(&[0xde, 0xad, 0xbe, 0xef])
            .assemble(),
    );
    assert_eq!(reason(&w.ring(wrong)), "Bell: not a listener");
    let silent = Address::repeat_byte(0x44);
    let mut p = asm::Program::default();
    p.ops(&[asm::Op::PUSH0, asm::Op::PUSH0, asm::Op::REVERT]);
    w.deploy(silent, p.assemble());
    assert_eq!(reason(&w.ring(silent)), "Bell: not a listener");
    assert_eq!(
        w.rings(),
        U256::ZERO,
        "refused rings changed the module's state"
    );
}

#[test]
fn a_revert_with_data_is_the_callers_revert() {
    let mut w = World::new();
    // Forwards the module's own revert: it calls Bell.fail() and bubbles the reason.
    let fwd = Address::repeat_byte(0x55);
    use asm::Op::*;
    let mut p = asm::Program::default();
    p.push_bytes(&IBell::failCall::SELECTOR)
        .push(224)
        .ops(&[SHL, PUSH0, MSTORE, PUSH0, PUSH0])
        .push(4)
        .ops(&[PUSH0, PUSH0])
        .push_bytes(BELL.as_slice())
        .ops(&[GAS, CALL, POP])
        .bubble();
    w.deploy(fwd, p.assemble());
    assert_eq!(reason(&w.ring(fwd)), "Bell: failed on purpose");
    assert_eq!(w.rings(), U256::ZERO);
}

#[test]
fn a_reentering_listener_sees_the_state_already_changed() {
    let mut w = World::new();
    // Reads Bell.rings() by STATICCALL and accepts only if it is already 1.
    use asm::Op::*;
    let mut p = asm::Program::default();
    p.push_bytes(&IBell::ringsCall::SELECTOR)
        .push(224)
        .ops(&[SHL, PUSH0, MSTORE])
        .push(0x20)
        .ops(&[PUSH0])
        .push(4)
        .ops(&[PUSH0])
        .push_bytes(BELL.as_slice())
        .ops(&[GAS, STATICCALL, POP, PUSH0, MLOAD, DUP1, PUSH0, SSTORE])
        .push(1)
        .ops(&[EQ])
        .jumpi("yes")
        .ops(&[PUSH0, PUSH0, REVERT])
        .label("yes")
        .return_word(&IListener::onRingCall::SELECTOR);
    let l = Address::repeat_byte(0x66);
    w.deploy(l, p.assemble());
    let r = w.ring(l);
    assert!(r.is_success(), "{r:?}");
    assert_eq!(w.rings(), U256::from(1));
    assert_eq!(
        w.storage(l, 0),
        U256::from(1),
        "the listener read the count"
    );
}

#[test]
fn value_stays_with_the_module_and_the_module_sees_it() {
    let mut w = World::new();
    let before = w.balance(USER);
    let r = w.send(
        BELL,
        5_000,
        IBell::ringCall {
            target: Address::repeat_byte(0x77),
        }
        .abi_encode(),
    );
    assert!(r.is_success(), "{r:?}");
    assert_eq!(w.view(IBell::paidCall {}.abi_encode()), U256::from(5_000));
    assert_eq!(w.balance(BELL), U256::from(5_000));
    assert_eq!(w.balance(USER), before - U256::from(5_000));
}

#[test]
fn the_inner_half_answers_only_its_trampoline() {
    let mut w = World::new();
    let inner = callout::inner(BELL);
    // A transaction straight to the inner address, with a forged caller prefix.
    let mut forged = USER.into_word().to_vec();
    forged.extend_from_slice(&[0u8; 32]);
    forged.extend(
        IBell::ringCall {
            target: Address::ZERO,
        }
        .abi_encode(),
    );
    let r = w.send(inner, 0, forged);
    assert_eq!(reason(&r), "only the module's own code calls this address");
    // A contract that DELEGATECALLs the inner half (as a receiver might try).
    use asm::Op::*;
    let mut p = asm::Program::default();
    p.ops(&[
        CALLDATASIZE,
        PUSH0,
        PUSH0,
        CALLDATACOPY,
        PUSH0,
        PUSH0,
        CALLDATASIZE,
        PUSH0,
    ])
    .push_bytes(inner.as_slice())
    .ops(&[GAS, DELEGATECALL, POP])
    .bubble();
    let d = Address::repeat_byte(0x88);
    w.deploy(d, p.assemble());
    assert_eq!(
        reason(&w.send(d, 0, vec![1, 2, 3])),
        "system modules are reached by CALL or STATICCALL, not DELEGATECALL or CALLCODE"
    );
    assert_eq!(w.rings(), U256::ZERO);
}

#[test]
fn a_module_revert_comes_back_through_the_trampoline() {
    let mut w = World::new();
    let r = w.send(BELL, 0, IBell::failCall {}.abi_encode());
    assert_eq!(reason(&r), "Bell: failed on purpose");
}

#[test]
fn no_module_is_reached_by_delegatecall() {
    let mut w = World::new();
    use asm::Op::*;
    let mut p = asm::Program::default();
    p.ops(&[PUSH0, PUSH0, PUSH0, PUSH0])
        .push_bytes(ECHO.as_slice())
        .ops(&[GAS, DELEGATECALL, POP])
        .bubble();
    let d = Address::repeat_byte(0x99);
    w.deploy(d, p.assemble());
    assert_eq!(
        reason(&w.send(d, 0, vec![])),
        "system modules are reached by CALL or STATICCALL, not DELEGATECALL or CALLCODE"
    );
    // A plain call answers.
    match w.send(ECHO, 0, vec![]) {
        ExecutionResult::Success {
            output: Output::Call(b),
            ..
        } => {
            assert_eq!(&b[..], USER.into_word().as_slice())
        }
        other => panic!("{other:?}"),
    }
}

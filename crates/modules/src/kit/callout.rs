//! Calls from a module into EVM contracts (ERC-721's `onERC721Received`).
//!
//! A module is a precompile, and revm runs a precompile to completion inside its
//! caller's frame: it cannot open a call frame of its own. A module that must call
//! contracts ([`crate::kit::SystemModule::calls_out`]) is therefore split in two:
//!
//! * At its address lives real EVM code, the [`trampoline`]: the same few dozen bytes
//!   for every such module. It calls the module's native code at [`inner`] (the
//!   address with byte 17 set, `0x…011005` for `0x…001005`) with
//!   `caller ‖ callvalue ‖ calldata` (the value stays in the module's account, where
//!   the module pays from), and acts on the tagged answer.
//! * The native code at the inner address accepts calls only from its own trampoline
//!   by a plain `CALL` (caller the module, target the inner address): any other caller,
//!   and any `DELEGATECALL` or `CALLCODE`, reverts, so nobody can hand it a forged
//!   caller.
//!
//! The [`answer`] is one of:
//! * tag 0: return these bytes;
//! * tag 1, a [`CallOut`]: call `target` with `data` from the module's own address (so
//!   the contract sees the module as `msg.sender`, as ERC-721 requires), and then return
//!   these bytes. The call is made only when `target` has code (a token sent to an
//!   account without code is not called, as in ERC-721). It must return the 32-byte
//!   word `expected` (a selector, left-aligned); if it reverts with data that data is
//!   the revert, otherwise (a revert without data, any other answer) the call reverts
//!   with `refusal`.
//!
//! A module's own revert is the trampoline's revert. The module makes its state
//! changes before the call (checks-effects-interactions): a contract that reenters sees
//! them, and a refusal undoes them with the trampoline's frame. Gas is the EVM's own
//! for the trampoline and the call (EIP-150's 63/64ths), plus the module's metered gas.
//! A module calls out at most once per call.

use alloy_primitives::{Address, Bytes, U256};
use std::sync::LazyLock;

/// The byte of an address that marks a module's inner (native) half.
const INNER_BYTE: usize = 17;

/// The inner address of the module at `module`.
pub fn inner(module: Address) -> Address {
    let mut a = module;
    a.0[INNER_BYTE] |= 1;
    a
}

/// The module whose inner address `a` is, if it is one (the byte is set).
pub fn outer(a: Address) -> Option<Address> {
    (a.0[INNER_BYTE] & 1 == 1).then(|| {
        let mut m = a;
        m.0[INNER_BYTE] &= !1;
        m
    })
}

/// A call a module asks its trampoline to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOut {
    pub target: Address,
    pub data: Bytes,
    /// The word the target must return (a selector, left-aligned).
    pub expected: [u8; 4],
    /// The revert data when the target does not return `expected`.
    pub refusal: Bytes,
}

/// The inner half's answer to its trampoline: `out` to return, after `call` if any.
pub fn answer(out: &[u8], call: Option<&CallOut>) -> Bytes {
    let Some(c) = call else {
        let mut v = vec![0u8; 32];
        v.extend_from_slice(out);
        return v.into();
    };
    let word = |n: usize| U256::from(n).to_be_bytes::<32>();
    let mut v = Vec::with_capacity(192 + c.data.len() + out.len() + c.refusal.len());
    v.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
    v.extend_from_slice(&c.target.into_word().0);
    let mut expected = [0u8; 32];
    expected[..4].copy_from_slice(&c.expected);
    v.extend_from_slice(&expected);
    v.extend_from_slice(&word(c.data.len()));
    v.extend_from_slice(&word(out.len()));
    v.extend_from_slice(&word(c.refusal.len()));
    v.extend_from_slice(&c.data);
    v.extend_from_slice(out);
    v.extend_from_slice(&c.refusal);
    v.into()
}

/// What the trampoline hands the inner half: the caller, the value, the calldata.
/// `None` when the input is shorter than the prefix (no trampoline sends that).
pub fn split_input(input: &[u8]) -> Option<(Address, U256, &[u8])> {
    let (prefix, rest) = input.split_at_checked(64)?;
    let caller = Address::from_word(prefix[..32].try_into().ok()?);
    let value = U256::from_be_slice(&prefix[32..]);
    Some((caller, value, rest))
}

/// The trampoline's EVM code (see the module's header).
pub fn trampoline() -> Bytes {
    static CODE: LazyLock<Bytes> = LazyLock::new(build_trampoline);
    CODE.clone()
}

fn build_trampoline() -> Bytes {
    use asm::{Op::*, Program};
    let mut p = Program::default();
    // [caller | value | calldata] at memory 0, then CALL(gas, inner, 0, 0, 64 + size, 0, 0).
    p.ops(&[CALLER, PUSH0, MSTORE, CALLVALUE])
        .push(0x20)
        .ops(&[MSTORE, CALLDATASIZE, PUSH0])
        .push(0x40)
        .ops(&[CALLDATACOPY, PUSH0, PUSH0, CALLDATASIZE])
        .push(0x40)
        .ops(&[ADD, PUSH0, PUSH0])
        .push(0x01_00_00)
        .ops(&[ADDRESS, OR, GAS, CALL])
        .jumpi("ok")
        .bubble()
        // The answer at memory 0; its size n stays on the stack.
        .label("ok")
        .ops(&[
            RETURNDATASIZE,
            DUP1,
            PUSH0,
            PUSH0,
            RETURNDATACOPY,
            PUSH0,
            MLOAD,
        ])
        .jumpi("callout")
        .push(0x20)
        .ops(&[SWAP1, SUB])
        .push(0x20)
        .ops(&[RETURN])
        // [n]: zero the scratch word at n, load the target; no code, no call.
        .label("callout")
        .ops(&[PUSH0, DUP2, MSTORE])
        .push(0x20)
        .ops(&[MLOAD, DUP1, EXTCODESIZE, ISZERO])
        .jumpi("done")
        // [n t]: CALL(gas, t, 0, 192, dataLen, n, 32).
        .push(0x20)
        .ops(&[DUP3])
        .push(0x60)
        .ops(&[MLOAD])
        .push(0xc0)
        .ops(&[PUSH0, DUP6, GAS, CALL, ISZERO])
        .jumpi("reverted")
        .ops(&[DUP2, MLOAD])
        .push(0x40)
        .ops(&[MLOAD, EQ])
        .jumpi("done")
        // [n t]: revert with the refusal at 192 + dataLen + outLen.
        .label("refused")
        .push(0xa0)
        .ops(&[MLOAD])
        .push(0x80)
        .ops(&[MLOAD])
        .push(0x60)
        .ops(&[MLOAD, ADD])
        .push(0xc0)
        .ops(&[ADD, REVERT])
        // The target reverted: with data, that data; without, the refusal.
        .label("reverted")
        .ops(&[RETURNDATASIZE, ISZERO])
        .jumpi("refused")
        .bubble()
        // [n t]: return the bytes at 192 + dataLen.
        .label("done")
        .push(0x80)
        .ops(&[MLOAD])
        .push(0x60)
        .ops(&[MLOAD])
        .push(0xc0)
        .ops(&[ADD, RETURN]);
    p.assemble()
}

/// A small EVM assembler with labels: enough for the trampoline, and for tests that
/// need a contract of a few instructions.
pub mod asm {
    use alloy_primitives::Bytes;
    use std::collections::BTreeMap;

    /// The opcodes used here (their byte values, from the Yellow Paper).
    #[allow(clippy::upper_case_acronyms)]
    #[derive(Clone, Copy, Debug)]
    #[repr(u8)]
    pub enum Op {
        STOP = 0x00,
        ADD = 0x01,
        SUB = 0x03,
        EQ = 0x14,
        ISZERO = 0x15,
        OR = 0x17,
        SHL = 0x1b,
        ADDRESS = 0x30,
        CALLER = 0x33,
        CALLVALUE = 0x34,
        CALLDATALOAD = 0x35,
        CALLDATASIZE = 0x36,
        CALLDATACOPY = 0x37,
        EXTCODESIZE = 0x3b,
        RETURNDATASIZE = 0x3d,
        RETURNDATACOPY = 0x3e,
        POP = 0x50,
        MLOAD = 0x51,
        MSTORE = 0x52,
        SLOAD = 0x54,
        SSTORE = 0x55,
        JUMPI = 0x57,
        GAS = 0x5a,
        JUMPDEST = 0x5b,
        PUSH0 = 0x5f,
        DUP1 = 0x80,
        DUP2 = 0x81,
        DUP3 = 0x82,
        DUP6 = 0x85,
        SWAP1 = 0x90,
        CALL = 0xf1,
        RETURN = 0xf3,
        DELEGATECALL = 0xf4,
        STATICCALL = 0xfa,
        REVERT = 0xfd,
    }

    /// A program under construction: bytes, labels, and the jumps still to patch.
    #[derive(Default)]
    pub struct Program {
        code: Vec<u8>,
        labels: BTreeMap<&'static str, u16>,
        patches: Vec<(usize, &'static str)>,
    }

    impl Program {
        pub fn ops(&mut self, ops: &[Op]) -> &mut Self {
            self.code.extend(ops.iter().map(|o| *o as u8));
            self
        }

        /// The shortest PUSH of `v` (PUSH0 for zero).
        pub fn push(&mut self, v: u128) -> &mut Self {
            self.push_bytes(&v.to_be_bytes()[v.leading_zeros() as usize / 8..])
        }

        /// A PUSH of exactly these bytes (an address, a selector); at most 32.
        pub fn push_bytes(&mut self, b: &[u8]) -> &mut Self {
            assert!(b.len() <= 32, "a PUSH holds at most 32 bytes");
            self.code.push(0x5f + b.len() as u8);
            self.code.extend_from_slice(b);
            self
        }

        /// A JUMPDEST named `name`.
        pub fn label(&mut self, name: &'static str) -> &mut Self {
            let at = u16::try_from(self.code.len()).expect("a program under 64 KiB");
            assert!(self.labels.insert(name, at).is_none(), "label {name} twice");
            self.ops(&[Op::JUMPDEST])
        }

        /// `PUSH2 @name JUMPI`.
        pub fn jumpi(&mut self, name: &'static str) -> &mut Self {
            self.code.push(0x61);
            self.patches.push((self.code.len(), name));
            self.code.extend_from_slice(&[0, 0]);
            self.ops(&[Op::JUMPI])
        }

        /// Reverts with the last call's return data.
        pub fn bubble(&mut self) -> &mut Self {
            use Op::*;
            self.ops(&[
                RETURNDATASIZE,
                PUSH0,
                PUSH0,
                RETURNDATACOPY,
                RETURNDATASIZE,
                PUSH0,
                REVERT,
            ])
        }

        /// Returns the 32-byte word whose first bytes are `b` (a selector).
        pub fn return_word(&mut self, b: &[u8]) -> &mut Self {
            use Op::*;
            let shift = (32 - b.len()) as u128 * 8;
            self.push_bytes(b).push(shift).ops(&[SHL, PUSH0, MSTORE]);
            self.push(0x20).ops(&[PUSH0, RETURN])
        }

        pub fn assemble(&mut self) -> Bytes {
            for (at, name) in &self.patches {
                let to = self
                    .labels
                    .get(name)
                    .unwrap_or_else(|| panic!("no label {name}"));
                self.code[*at..*at + 2].copy_from_slice(&to.to_be_bytes());
            }
            self.code.clone().into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn inner_addresses_set_byte_17_and_back() {
        let m = address!("0x0000000000000000000000000000000000001005");
        assert_eq!(
            inner(m),
            address!("0x0000000000000000000000000000000000011005")
        );
        assert_eq!(outer(inner(m)), Some(m));
        assert_eq!(outer(m), None);
    }

    #[test]
    fn answers_lay_out_words_then_bytes() {
        let plain = answer(b"hi", None);
        assert_eq!(&plain[..32], &[0u8; 32]);
        assert_eq!(&plain[32..], b"hi");
        let c = CallOut {
            target: Address::repeat_byte(7),
            data: Bytes::from_static(b"data"),
            expected: [1, 2, 3, 4],
            refusal: Bytes::from_static(b"no"),
        };
        let a = answer(b"out", Some(&c));
        assert_eq!(a[31], 1);
        assert_eq!(&a[44..64], Address::repeat_byte(7).as_slice());
        assert_eq!(&a[64..68], &[1, 2, 3, 4]);
        assert_eq!((a[127], a[159], a[191]), (4, 3, 2));
        assert_eq!(&a[192..], b"dataoutno");
    }

    #[test]
    fn split_input_needs_the_prefix() {
        assert!(split_input(&[0u8; 63]).is_none());
        let mut v = Address::repeat_byte(9).into_word().to_vec();
        v.extend_from_slice(&U256::from(5).to_be_bytes::<32>());
        v.extend_from_slice(b"x");
        let (c, val, rest) = split_input(&v).expect("prefix");
        assert_eq!(
            (c, val, rest),
            (Address::repeat_byte(9), U256::from(5), &b"x"[..])
        );
    }

    #[test]
    fn the_trampoline_is_small_and_its_jumps_land_on_jumpdests() {
        let code = trampoline();
        assert_eq!(code.len(), 139, "the size docs/ARCHITECTURE.md gives");
        let mut i = 0;
        while i < code.len() {
            let op = code[i];
            if op == 0x61 && code.get(i + 3) == Some(&0x57) {
                let to = u16::from_be_bytes([code[i + 1], code[i + 2]]) as usize;
                assert_eq!(code[to], 0x5b, "jump at {i} to {to}");
            }
            i += 1 + if (0x60..=0x7f).contains(&op) {
                (op - 0x5f) as usize
            } else {
                0
            };
        }
    }
}

//! Typed storage slots in Solidity's layout.
//!
//! A module declares its storage as a list of slot numbers, as a Solidity contract
//! declares its state variables in order, each with its type:
//!
//! ```ignore
//! const OWNER: Value<Address> = Value::at(0);
//! const BALANCES: Mapping<Address, U256> = Mapping::at(1);
//! const ALLOWED: DoubleMapping<Address, Address, bool> = DoubleMapping::at(2);
//! const HOLDERS: Array<Address> = Array::at(3);
//! const SCORES: ArrayMapping<B256, u64> = ArrayMapping::at(4);
//! ```
//!
//! and reads and writes them through the metered host. The slots are Solidity's: a
//! mapping's entry for key `k` at `keccak256(pad(k) . slot)`, a nested mapping's at
//! `keccak256(pad(k2) . keccak256(pad(k1) . slot))`, an array's length at its slot and
//! element `i` at `keccak256(slot) + i`, and a mapping of arrays' entry as an array
//! whose length lives at the mapping's slot for its key.

use crate::{Metered, ModuleError};
use alloy_primitives::{keccak256, Address, B256, U256};
use std::marker::PhantomData;

/// What fits in one storage word.
pub trait Word: Sized {
    fn to_word(&self) -> U256;
    fn from_word(w: U256) -> Self;
}

impl Word for U256 {
    fn to_word(&self) -> U256 {
        *self
    }
    fn from_word(w: U256) -> Self {
        w
    }
}

impl Word for B256 {
    fn to_word(&self) -> U256 {
        U256::from_be_bytes(self.0)
    }
    fn from_word(w: U256) -> Self {
        B256::from(w.to_be_bytes::<32>())
    }
}

impl Word for Address {
    fn to_word(&self) -> U256 {
        U256::from_be_bytes(self.into_word().0)
    }
    fn from_word(w: U256) -> Self {
        Address::from_word(B256::from(w.to_be_bytes::<32>()))
    }
}

impl Word for u64 {
    fn to_word(&self) -> U256 {
        U256::from(*self)
    }
    fn from_word(w: U256) -> Self {
        w.saturating_to()
    }
}

impl Word for bool {
    fn to_word(&self) -> U256 {
        U256::from(*self as u8)
    }
    fn from_word(w: U256) -> Self {
        !w.is_zero()
    }
}

/// What can key a mapping: its 32-byte, left-padded form (Solidity's for value types).
pub trait Key {
    fn key(&self) -> B256;
}

impl Key for Address {
    fn key(&self) -> B256 {
        self.into_word()
    }
}

impl Key for B256 {
    fn key(&self) -> B256 {
        *self
    }
}

impl Key for U256 {
    fn key(&self) -> B256 {
        B256::from(self.to_be_bytes::<32>())
    }
}

impl Key for u64 {
    fn key(&self) -> B256 {
        U256::from(*self).key()
    }
}

/// `keccak256(key . slot)`, Solidity's mapping rule.
pub fn mapped(slot: U256, key: B256) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(key.as_slice());
    buf[32..].copy_from_slice(&slot.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(buf).0)
}

/// Element `i` of a dynamic array whose length lives at `slot`: `keccak256(slot) + i`.
pub fn element(slot: U256, i: u64) -> U256 {
    let base = U256::from_be_bytes(keccak256(slot.to_be_bytes::<32>()).0);
    base.wrapping_add(U256::from(i))
}

/// One value at a declared slot.
pub struct Value<T> {
    slot: u64,
    _t: PhantomData<T>,
}

impl<T: Word> Value<T> {
    pub const fn at(slot: u64) -> Self {
        Self {
            slot,
            _t: PhantomData,
        }
    }
    pub fn slot(&self) -> U256 {
        U256::from(self.slot)
    }
    pub fn get(&self, m: &mut Metered<'_>) -> Result<T, ModuleError> {
        Ok(T::from_word(m.sload(self.slot())?))
    }
    pub fn set(&self, m: &mut Metered<'_>, v: &T) -> Result<(), ModuleError> {
        m.sstore(self.slot(), v.to_word())
    }
    /// The value in another module's storage (this slot as `module` declares it).
    pub fn get_in(&self, m: &mut Metered<'_>, module: Address) -> Result<T, ModuleError> {
        Ok(T::from_word(m.sload_at(module, self.slot())?))
    }
}

/// `mapping(K => V)` at a declared slot.
pub struct Mapping<K, V> {
    slot: u64,
    _t: PhantomData<(K, V)>,
}

impl<K: Key, V: Word> Mapping<K, V> {
    pub const fn at(slot: u64) -> Self {
        Self {
            slot,
            _t: PhantomData,
        }
    }
    pub fn slot(&self, k: &K) -> U256 {
        mapped(U256::from(self.slot), k.key())
    }
    pub fn get(&self, m: &mut Metered<'_>, k: &K) -> Result<V, ModuleError> {
        Ok(V::from_word(m.sload(self.slot(k))?))
    }
    pub fn set(&self, m: &mut Metered<'_>, k: &K, v: &V) -> Result<(), ModuleError> {
        m.sstore(self.slot(k), v.to_word())
    }
    /// The entry in another module's storage (this mapping as `module` declares it).
    pub fn get_in(&self, m: &mut Metered<'_>, module: Address, k: &K) -> Result<V, ModuleError> {
        Ok(V::from_word(m.sload_at(module, self.slot(k))?))
    }
}

/// `mapping(K1 => mapping(K2 => V))` at a declared slot (ERC-721's operator approvals).
pub struct DoubleMapping<K1, K2, V> {
    slot: u64,
    _t: PhantomData<(K1, K2, V)>,
}

impl<K1: Key, K2: Key, V: Word> DoubleMapping<K1, K2, V> {
    pub const fn at(slot: u64) -> Self {
        Self {
            slot,
            _t: PhantomData,
        }
    }
    pub fn slot(&self, k1: &K1, k2: &K2) -> U256 {
        let inner = mapped(U256::from(self.slot), k1.key());
        mapped(inner, k2.key())
    }
    pub fn get(&self, m: &mut Metered<'_>, k1: &K1, k2: &K2) -> Result<V, ModuleError> {
        Ok(V::from_word(m.sload(self.slot(k1, k2))?))
    }
    pub fn set(&self, m: &mut Metered<'_>, k1: &K1, k2: &K2, v: &V) -> Result<(), ModuleError> {
        m.sstore(self.slot(k1, k2), v.to_word())
    }
}

/// A dynamic array `T[]` at a declared slot: its length there, its elements from
/// `keccak256(slot)`. Pushes past `max` are refused (every loop over it is bounded).
pub struct Array<T> {
    slot: u64,
    _t: PhantomData<T>,
}

impl<T: Word> Array<T> {
    pub const fn at(slot: u64) -> Self {
        Self {
            slot,
            _t: PhantomData,
        }
    }
    pub fn element_slot(&self, i: u64) -> U256 {
        element(U256::from(self.slot), i)
    }
    /// The slot that holds the length.
    pub fn len_slot(&self) -> U256 {
        U256::from(self.slot)
    }
    /// Every element, the length read once and capped at `max`.
    pub fn all(&self, m: &mut Metered<'_>, max: u64) -> Result<Vec<T>, ModuleError> {
        let n = self.len(m)?.min(max);
        (0..n)
            .map(|i| Ok(T::from_word(m.sload(self.element_slot(i))?)))
            .collect()
    }
    pub fn len(&self, m: &mut Metered<'_>) -> Result<u64, ModuleError> {
        Ok(m.sload(U256::from(self.slot))?.saturating_to())
    }
    pub fn get(&self, m: &mut Metered<'_>, i: u64) -> Result<Option<T>, ModuleError> {
        if i >= self.len(m)? {
            return Ok(None);
        }
        Ok(Some(T::from_word(m.sload(self.element_slot(i))?)))
    }
    pub fn push(&self, m: &mut Metered<'_>, v: &T, max: u64) -> Result<u64, ModuleError> {
        let n = self.len(m)?;
        if n >= max {
            return Err(ModuleError::Revert(format!(
                "the list is full ({max} entries)"
            )));
        }
        m.sstore(self.element_slot(n), v.to_word())?;
        m.sstore(U256::from(self.slot), U256::from(n + 1))?;
        Ok(n)
    }
    /// Overwrites element `i`, which must exist.
    pub fn set(&self, m: &mut Metered<'_>, i: u64, v: &T) -> Result<(), ModuleError> {
        let n = self.len(m)?;
        if i >= n {
            return Err(ModuleError::Revert(format!(
                "no entry {i} in a list of {n}"
            )));
        }
        m.sstore(self.element_slot(i), v.to_word())
    }
    /// Removes element `i` by moving the last into its place (order not kept).
    pub fn swap_remove(&self, m: &mut Metered<'_>, i: u64) -> Result<(), ModuleError> {
        let n = self.len(m)?;
        if i >= n {
            return Err(ModuleError::Revert(format!(
                "no entry {i} in a list of {n}"
            )));
        }
        let last = m.sload(self.element_slot(n - 1))?;
        m.sstore(self.element_slot(i), last)?;
        m.sstore(self.element_slot(n - 1), U256::ZERO)?;
        m.sstore(U256::from(self.slot), U256::from(n - 1))
    }
}

/// `mapping(K => T[])` at a declared slot: entry `k`'s length at the mapping's slot for
/// `k`, its elements from `keccak256` of that slot (Solidity's layout).
pub struct ArrayMapping<K, T> {
    slot: u64,
    _t: PhantomData<(K, T)>,
}

impl<K: Key, T: Word> ArrayMapping<K, T> {
    pub const fn at(slot: u64) -> Self {
        Self {
            slot,
            _t: PhantomData,
        }
    }
    /// The slot that holds entry `k`'s length.
    pub fn len_slot(&self, k: &K) -> U256 {
        mapped(U256::from(self.slot), k.key())
    }
    /// The slot of entry `k`'s element `i`.
    pub fn element_slot(&self, k: &K, i: u64) -> U256 {
        element(self.len_slot(k), i)
    }
    pub fn len(&self, m: &mut Metered<'_>, k: &K) -> Result<u64, ModuleError> {
        Ok(m.sload(self.len_slot(k))?.saturating_to())
    }
    /// Appends to entry `k`; refused past `max` elements.
    pub fn push(&self, m: &mut Metered<'_>, k: &K, v: &T, max: u64) -> Result<u64, ModuleError> {
        let at = self.len_slot(k);
        let n: u64 = m.sload(at)?.saturating_to();
        if n >= max {
            return Err(ModuleError::Revert(format!(
                "the list is full ({max} entries)"
            )));
        }
        m.sstore(element(at, n), v.to_word())?;
        m.sstore(at, U256::from(n + 1))?;
        Ok(n)
    }
    /// Element `i` of entry `k`, which the caller knows is below its length.
    pub fn element(&self, m: &mut Metered<'_>, k: &K, i: u64) -> Result<T, ModuleError> {
        Ok(T::from_word(m.sload(self.element_slot(k, i))?))
    }
    /// Entry `k`'s elements, capped at `max`.
    pub fn all(&self, m: &mut Metered<'_>, k: &K, max: u64) -> Result<Vec<T>, ModuleError> {
        let at = self.len_slot(k);
        let n = m.sload(at)?.saturating_to::<u64>().min(max);
        (0..n)
            .map(|i| Ok(T::from_word(m.sload(element(at, i))?)))
            .collect()
    }
}

/// `mapping(K => S)` for a struct `S` of one-word fields and strings, Solidity's
/// layout: field `i` of entry `k` at `keccak256(pad(k) . slot) + i` (a string field's
/// slot holds it as [`read_str`] reads it).
pub struct Records<K> {
    slot: u64,
    _t: PhantomData<K>,
}

impl<K: Key> Records<K> {
    pub const fn at(slot: u64) -> Self {
        Self {
            slot,
            _t: PhantomData,
        }
    }
    /// The slot of entry `k`'s field `i`.
    pub fn field(&self, k: &K, i: u64) -> U256 {
        mapped(U256::from(self.slot), k.key()).wrapping_add(U256::from(i))
    }
    pub fn get<T: Word>(&self, m: &mut Metered<'_>, k: &K, i: u64) -> Result<T, ModuleError> {
        Ok(T::from_word(m.sload(self.field(k, i))?))
    }
    /// Field `i` of entry `k` in another module's storage (as `module` declares it).
    pub fn get_in<T: Word>(
        &self,
        m: &mut Metered<'_>,
        module: Address,
        k: &K,
        i: u64,
    ) -> Result<T, ModuleError> {
        Ok(T::from_word(m.sload_at(module, self.field(k, i))?))
    }
    pub fn set<T: Word>(
        &self,
        m: &mut Metered<'_>,
        k: &K,
        i: u64,
        v: &T,
    ) -> Result<(), ModuleError> {
        m.sstore(self.field(k, i), v.to_word())
    }
    /// A string field, refused past `max` bytes.
    pub fn get_str(
        &self,
        m: &mut Metered<'_>,
        k: &K,
        i: u64,
        max: usize,
    ) -> Result<String, ModuleError> {
        read_str(m, self.field(k, i), max)
    }
    pub fn set_str(&self, m: &mut Metered<'_>, k: &K, i: u64, s: &str) -> Result<(), ModuleError> {
        write_str(m, self.field(k, i), s)
    }
}

/// Solidity's `string` at `slot`: up to 31 bytes in the slot itself (left-aligned,
/// `2 · len` in the last byte); longer, `2 · len + 1` in the slot and the bytes from
/// `keccak256(slot)` on. Refused past `max` bytes (every read is bounded).
pub fn read_str(m: &mut Metered<'_>, slot: U256, max: usize) -> Result<String, ModuleError> {
    let w = m.sload(slot)?.to_be_bytes::<32>();
    let bytes = if w[31] & 1 == 0 {
        let n = (w[31] / 2) as usize;
        w[..n.min(31)].to_vec()
    } else {
        let n: usize = (U256::from_be_bytes(w) >> 1usize).saturating_to();
        if n > max {
            return Err(ModuleError::Revert(format!(
                "a stored string of {n} bytes is over {max}"
            )));
        }
        let base = U256::from_be_bytes(keccak256(slot.to_be_bytes::<32>()).0);
        let mut out = Vec::with_capacity(n);
        for i in 0..n.div_ceil(32) {
            let word = m
                .sload(base.wrapping_add(U256::from(i)))?
                .to_be_bytes::<32>();
            out.extend_from_slice(&word[..(n - 32 * i).min(32)]);
        }
        out
    };
    String::from_utf8(bytes).map_err(|_| ModuleError::Revert("a stored string is not UTF-8".into()))
}

/// Writes `s` at `slot` in Solidity's `string` layout ([`read_str`]).
pub fn write_str(m: &mut Metered<'_>, slot: U256, s: &str) -> Result<(), ModuleError> {
    let b = s.as_bytes();
    if b.len() <= 31 {
        let mut w = [0u8; 32];
        w[..b.len()].copy_from_slice(b);
        w[31] = 2 * b.len() as u8;
        return m.sstore(slot, U256::from_be_bytes(w));
    }
    m.sstore(slot, U256::from(2 * b.len() + 1))?;
    let base = U256::from_be_bytes(keccak256(slot.to_be_bytes::<32>()).0);
    for (i, chunk) in b.chunks(32).enumerate() {
        let mut w = [0u8; 32];
        w[..chunk.len()].copy_from_slice(chunk);
        m.sstore(base.wrapping_add(U256::from(i)), U256::from_be_bytes(w))?;
    }
    Ok(())
}

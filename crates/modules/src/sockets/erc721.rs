//! ERC-721 ownership, approvals, transfers and enumeration, with OpenZeppelin's rules
//! (and its revert reasons, in this module's words), on packed storage.
//!
//! Invariants: a token's [`Holding`] names its owner; an owner's list is dense
//! (`tokenOfOwnerByIndex` for `0..balance`) and its count is the owner's balance;
//! removing a token moves the list's last into its place. A token at a position from
//! [`IN_FIRST_WORD`] on has its position in its holding; one in the list's first word
//! (which every transfer reads and writes for the count) is found there by looking, so
//! its recorded position may be stale and moving a token into the first word costs no
//! write of its holding. Lanes past the count are left as they are unless their word
//! is written anyway. Ids run from 1 to `totalSupply` (sockets are never burnt, so
//! `tokenByIndex(i)` is `i + 1`). Ids and counts fit a 32-bit lane: minting stops at
//! [`MAX_ID`].

use super::storage::{
    lane, list_word, place, with_lane, Holding, APPROVALS, HOLDINGS, LANES, MAX_ID, MINTED,
    OPERATORS,
};
use super::{revert, ISockets};
use crate::kit::abi::emit;
use crate::{Metered, ModuleError};
use alloy_primitives::{Address, U256};
use std::collections::BTreeMap;

/// Socket `id`'s holding; a revert if there is no such socket.
pub fn holding(m: &mut Metered<'_>, id: U256) -> Result<Holding, ModuleError> {
    let h = Holding::decode(HOLDINGS.get(m, &id)?);
    if h.owner.is_zero() {
        return Err(revert(format!("socket {id} does not exist")));
    }
    Ok(h)
}

pub fn set_holding(m: &mut Metered<'_>, id: U256, h: &Holding) -> Result<(), ModuleError> {
    HOLDINGS.set(m, &id, &h.encode())
}

/// The owner of socket `id`; a revert if there is none.
pub fn owner_of(m: &mut Metered<'_>, id: U256) -> Result<Address, ModuleError> {
    Ok(holding(m, id)?.owner)
}

/// Whether `spender` may move or manage socket `id` held as `h`: its owner, its
/// approved address, or one of the owner's operators.
fn may(m: &mut Metered<'_>, h: &Holding, spender: Address, id: U256) -> Result<bool, ModuleError> {
    Ok(spender == h.owner
        || (h.approved && APPROVALS.get(m, &id)? == spender)
        || OPERATORS.get(m, &h.owner, &spender)?)
}

/// Whether `spender` may move or manage `owner`'s socket `id`.
pub fn authorized(
    m: &mut Metered<'_>,
    owner: Address,
    spender: Address,
    id: U256,
) -> Result<bool, ModuleError> {
    let h = holding(m, id)?;
    Ok(h.owner == owner && may(m, &h, spender, id)?)
}

/// Mints the next socket to `to`.
pub fn mint(m: &mut Metered<'_>, to: Address) -> Result<U256, ModuleError> {
    if to.is_zero() {
        return Err(revert("cannot mint to the zero address"));
    }
    let n = MINTED.get(m)? + 1;
    if n > MAX_ID {
        return Err(revert(format!("all {MAX_ID} socket ids are taken")));
    }
    MINTED.set(m, &n)?;
    let id = U256::from(n);
    let index = push(m, to, n)?;
    let h = Holding {
        owner: to,
        index,
        ..Default::default()
    };
    set_holding(m, id, &h)?;
    emit(
        m,
        ISockets::Transfer {
            from: Address::ZERO,
            to,
            tokenId: id,
        },
    );
    Ok(id)
}

/// Moves socket `id` from `from` to `to` for `caller`, after `before` (the rental's
/// hand-over, which may clear the holding's flags) has run with the old owner still
/// recorded.
pub fn transfer(
    m: &mut Metered<'_>,
    caller: Address,
    from: Address,
    to: Address,
    id: U256,
    before: impl FnOnce(&mut Metered<'_>, &mut Holding) -> Result<(), ModuleError>,
) -> Result<(), ModuleError> {
    let mut h = holding(m, id)?;
    if h.owner != from {
        return Err(revert(format!("{from} does not own socket {id}")));
    }
    if to.is_zero() {
        return Err(revert("cannot transfer to the zero address"));
    }
    if !may(m, &h, caller, id)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id}, nor approved, nor an operator"
        )));
    }
    before(m, &mut h)?;
    if h.approved {
        APPROVALS.set(m, &id, &Address::ZERO)?;
        h.approved = false;
    }
    if from != to {
        remove(m, from, id.saturating_to(), h.index)?;
        h.index = push(m, to, id.saturating_to())?;
        h.owner = to;
    }
    set_holding(m, id, &h)?;
    emit(
        m,
        ISockets::Transfer {
            from,
            to,
            tokenId: id,
        },
    );
    Ok(())
}

/// Appends `id` to `owner`'s list; its index.
fn push(m: &mut Metered<'_>, owner: Address, id: u64) -> Result<u64, ModuleError> {
    let w0 = m.sload(list_word(owner, 0))?;
    let n = lane(w0, 0);
    let (w, l) = place(n);
    if w == 0 {
        m.sstore(
            list_word(owner, 0),
            with_lane(with_lane(w0, 0, n + 1), l, id),
        )?;
    } else {
        let word = m.sload(list_word(owner, w))?;
        m.sstore(list_word(owner, w), with_lane(word, l, id))?;
        m.sstore(list_word(owner, 0), with_lane(w0, 0, n + 1))?;
    }
    Ok(n)
}

/// The words of one owner's list a removal touches, read once and written once.
struct Words {
    owner: Address,
    words: BTreeMap<u64, (U256, bool)>,
}

impl Words {
    fn get(&mut self, m: &mut Metered<'_>, w: u64) -> Result<U256, ModuleError> {
        if let Some((v, _)) = self.words.get(&w) {
            return Ok(*v);
        }
        let v = m.sload(list_word(self.owner, w))?;
        self.words.insert(w, (v, false));
        Ok(v)
    }

    /// Position `p`'s id ([`place`]).
    fn lane(&mut self, m: &mut Metered<'_>, p: u64) -> Result<u64, ModuleError> {
        let (w, l) = place(p);
        Ok(lane(self.get(m, w)?, l))
    }

    fn set_lane(&mut self, m: &mut Metered<'_>, w: u64, l: u64, v: u64) -> Result<(), ModuleError> {
        let word = with_lane(self.get(m, w)?, l, v);
        self.words.insert(w, (word, true));
        Ok(())
    }

    fn set(&mut self, m: &mut Metered<'_>, p: u64, v: u64) -> Result<(), ModuleError> {
        let (w, l) = place(p);
        self.set_lane(m, w, l, v)
    }

    /// Clears position `p`'s lane where its word is written anyway (the first word,
    /// or the word a removal filled a gap in); elsewhere the stale lane stays, past
    /// the count, and a later append overwrites it at a reset's price.
    fn clear(&mut self, p: u64) {
        let (w, l) = place(p);
        if let Some((v, dirty)) = self.words.get_mut(&w) {
            if *dirty || w == 0 {
                *v = with_lane(*v, l, 0);
                *dirty = true;
            }
        }
    }

    fn write(self, m: &mut Metered<'_>) -> Result<(), ModuleError> {
        for (w, (v, dirty)) in self.words {
            if dirty {
                m.sstore(list_word(self.owner, w), v)?;
            }
        }
        Ok(())
    }
}

/// Positions held in the first word of a list, beside the count.
pub const IN_FIRST_WORD: u64 = LANES - 1;

/// Takes token `id` (recorded at `hint`) out of `owner`'s list, moving the list's last
/// into its place (and, where that place is past the first word, that token's holding
/// to its new position).
fn remove(m: &mut Metered<'_>, owner: Address, id: u64, hint: u64) -> Result<(), ModuleError> {
    let mut words = Words {
        owner,
        words: BTreeMap::new(),
    };
    let w0 = words.get(m, 0)?;
    let n = lane(w0, 0);
    let index = (0..IN_FIRST_WORD.min(n))
        .find(|&p| lane(w0, p + 1) == id)
        .unwrap_or(hint);
    if index >= n || words.lane(m, index)? != id {
        return Err(revert(format!(
            "socket {id} is not at position {index} of {owner}'s list"
        )));
    }
    let last = n - 1;
    if index != last {
        let moved = words.lane(m, last)?;
        words.set(m, index, moved)?;
        if index >= IN_FIRST_WORD {
            let mut hm = Holding::decode(HOLDINGS.get(m, &U256::from(moved))?);
            hm.index = index;
            set_holding(m, U256::from(moved), &hm)?;
        }
    }
    words.clear(last);
    words.set_lane(m, 0, 0, last)?;
    words.write(m)
}

/// `owner`'s token at list position `p` (which must be below its balance).
fn at_position(m: &mut Metered<'_>, owner: Address, p: u64) -> Result<u64, ModuleError> {
    let (w, l) = place(p);
    Ok(lane(m.sload(list_word(owner, w))?, l))
}

pub fn approve(
    m: &mut Metered<'_>,
    caller: Address,
    to: Address,
    id: U256,
) -> Result<(), ModuleError> {
    let mut h = holding(m, id)?;
    let owner = h.owner;
    if to == owner {
        return Err(revert("approval to the current owner"));
    }
    if caller != owner && !OPERATORS.get(m, &owner, &caller)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id} nor an operator"
        )));
    }
    APPROVALS.set(m, &id, &to)?;
    let has = !to.is_zero();
    if h.approved != has {
        h.approved = has;
        set_holding(m, id, &h)?;
    }
    emit(
        m,
        ISockets::Approval {
            owner,
            approved: to,
            tokenId: id,
        },
    );
    Ok(())
}

/// The approved address of socket `id` (zero if none).
pub fn approved(m: &mut Metered<'_>, id: U256) -> Result<Address, ModuleError> {
    let h = holding(m, id)?;
    if !h.approved {
        return Ok(Address::ZERO);
    }
    APPROVALS.get(m, &id)
}

pub fn set_operator(
    m: &mut Metered<'_>,
    owner: Address,
    operator: Address,
    approved: bool,
) -> Result<(), ModuleError> {
    if operator == owner || operator.is_zero() {
        return Err(revert("an operator is another, non-zero address"));
    }
    OPERATORS.set(m, &owner, &operator, &approved)?;
    emit(
        m,
        ISockets::ApprovalForAll {
            owner,
            operator,
            approved,
        },
    );
    Ok(())
}

/// How many sockets `owner` holds.
fn count(m: &mut Metered<'_>, owner: Address) -> Result<u64, ModuleError> {
    Ok(lane(m.sload(list_word(owner, 0))?, 0))
}

pub fn balance_of(m: &mut Metered<'_>, owner: Address) -> Result<U256, ModuleError> {
    if owner.is_zero() {
        return Err(revert("the zero address is not a valid owner"));
    }
    Ok(U256::from(count(m, owner)?))
}

pub fn total_supply(m: &mut Metered<'_>) -> Result<U256, ModuleError> {
    Ok(U256::from(MINTED.get(m)?))
}

pub fn token_by_index(m: &mut Metered<'_>, index: U256) -> Result<U256, ModuleError> {
    if index >= total_supply(m)? {
        return Err(revert(format!("index {index} is past the last socket")));
    }
    Ok(index + U256::from(1))
}

pub fn token_of_owner_by_index(
    m: &mut Metered<'_>,
    owner: Address,
    index: U256,
) -> Result<U256, ModuleError> {
    let n = balance_of(m, owner)?;
    if index >= n {
        return Err(revert(format!(
            "{owner} owns {n} sockets, no index {index}"
        )));
    }
    Ok(U256::from(at_position(m, owner, index.saturating_to())?))
}

//! The `Sockets` system module: computing sockets, compute access as ERC-721 tokens.
//!
//! A socket is a token for access to one app on one computing node (its provider):
//! the app's name and, where it has one, its content hash; a unit (calls, fuel,
//! tokens or seconds of compute); credits in that unit; the price per unit
//! already paid into the socket; a validity window; and optional renewal. It is a
//! complete ERC-721 (with ERC-165, Metadata and Enumerable), so wallets, marketplaces
//! and contracts hold and trade it unchanged; `tokenURI` is an on-chain
//! `data:application/json` document.
//!
//! * Minting: a node's owner mints sockets for its node paying only gas (`mint`; no
//!   credits until someone `fund`s them), or posts a standing offer (`offer`) from
//!   which anyone `buy`s a socket with its credits paid.
//! * Money: see [`economy`]: every credit is backed by wei the module holds; use
//!   releases it to the provider, a refund after the end returns the rest to the
//!   holder of record.
//! * Rentals: ERC-4907 users, and protected paid rentals ([`rental`]).
//! * Subscriptions: ERC-5643's `renewSubscription` / `cancelSubscription` /
//!   `expiresAt` / `isRenewable`.
//! * `safeTransferFrom` calls `onERC721Received` on a contract recipient and reverts
//!   when it does not accept: the module calls out through its trampoline
//!   ([`crate::kit::callout`]), after its state changes.

mod abi;
pub mod economy;
pub mod erc721;
pub mod rental;
pub mod settle;
mod storage;
#[cfg(test)]
mod tests;
mod uri;

pub use abi::{IERC721Receiver, ISockets};

use crate::kit::callout::CallOut;
use crate::{Metered, ModuleCall, ModuleError, SOCKETS_ADDRESS};
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface};

/// The unit a socket's credits count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Unit {
    Call = 0,
    Fuel = 1,
    Tokens = 2,
    Seconds = 3,
}

impl Unit {
    pub fn from_u8(u: u8) -> Result<Unit, ModuleError> {
        Ok(match u {
            0 => Unit::Call,
            1 => Unit::Fuel,
            2 => Unit::Tokens,
            3 => Unit::Seconds,
            u => {
                return Err(revert(format!(
                    "unit {u} is none of 0 calls, 1 fuel, 2 tokens, 3 seconds"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Call => "calls",
            Unit::Fuel => "fuel",
            Unit::Tokens => "tokens",
            Unit::Seconds => "seconds of compute",
        }
    }
}

/// ERC-165 interface ids: ERC-165, ERC-721, Metadata, Enumerable, ERC-4907, ERC-5643,
/// ERC-2981.
pub const INTERFACES: [[u8; 4]; 7] = [
    [0x01, 0xff, 0xc9, 0xa7],
    [0x80, 0xac, 0x58, 0xcd],
    [0x5b, 0x5e, 0x13, 0x9f],
    [0x78, 0x0e, 0x9d, 0x63],
    [0xad, 0x09, 0x2b, 0x5c],
    [0x8c, 0x65, 0xf8, 0x4d],
    [0x2a, 0x55, 0x20, 0x5a],
];

/// The highest royalty a provider may set: 10%.
pub const MAX_ROYALTY_BPS: u16 = 1_000;

/// Most sockets `emc_sockets` lists for one owner.
pub const MAX_LISTED: u64 = 1_024;

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Sockets", why)
}

pub struct SocketsModule;

impl crate::kit::SystemModule for SocketsModule {
    fn address(&self) -> Address {
        SOCKETS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Sockets"
    }

    fn calls_out(&self) -> bool {
        true
    }

    fn genesis(&self, g: &emc_types::Genesis) -> crate::kit::ModuleGenesis {
        let window = storage::SETTLE_WINDOW;
        crate::kit::ModuleGenesis {
            storage: [(window.slot(), U256::from(g.sockets.settle_window_secs))].into(),
            balance: None,
        }
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use ISockets::ISocketsCalls as C;
        let c =
            C::abi_decode(call.input).map_err(|_| revert("unknown function or bad arguments"))?;
        let payable = matches!(
            c,
            C::fund(_) | C::buy(_) | C::rent(_) | C::renewSubscription(_)
        );
        if !payable && !call.value.is_zero() {
            return Err(revert("this call takes no value"));
        }
        if call.is_static && !is_view(&c) {
            return Err(revert("state change in a static call"));
        }
        serve(m, call, c)
    }
}

fn is_view(c: &ISockets::ISocketsCalls) -> bool {
    use ISockets::ISocketsCalls as C;
    matches!(
        c,
        C::balanceOf(_)
            | C::ownerOf(_)
            | C::getApproved(_)
            | C::isApprovedForAll(_)
            | C::supportsInterface(_)
            | C::name(_)
            | C::symbol(_)
            | C::tokenURI(_)
            | C::totalSupply(_)
            | C::tokenByIndex(_)
            | C::tokenOfOwnerByIndex(_)
            | C::userOf(_)
            | C::userExpires(_)
            | C::expiresAt(_)
            | C::isRenewable(_)
            | C::socket(_)
            | C::offerInfo(_)
            | C::offerCount(_)
            | C::check(_)
            | C::isSettled(_)
            | C::spent(_)
            | C::royaltyInfo(_)
    )
}

fn word<T: alloy_sol_types::SolValue>(v: T) -> Bytes {
    v.abi_encode().into()
}

fn serve(
    m: &mut Metered<'_>,
    call: &ModuleCall<'_>,
    c: ISockets::ISocketsCalls,
) -> Result<Bytes, ModuleError> {
    use ISockets::ISocketsCalls as C;
    let (who, value, now) = (call.caller, call.value, m.host().timestamp());
    let none = Bytes::new;
    Ok(match c {
        C::safeTransferFrom_0(t) => {
            safe_transfer(m, who, t.from, t.to, t.tokenId, t.data, now)?;
            none()
        }
        C::safeTransferFrom_1(t) => {
            safe_transfer(m, who, t.from, t.to, t.tokenId, Bytes::new(), now)?;
            none()
        }
        C::transferFrom(t) => {
            let id = t.tokenId;
            erc721::transfer(m, who, t.from, t.to, id, |m, h| {
                rental::before_transfer(m, id, h, now)
            })?;
            none()
        }
        C::approve(a) => {
            erc721::approve(m, who, a.approved, a.tokenId)?;
            none()
        }
        C::setApprovalForAll(a) => {
            erc721::set_operator(m, who, a.operator, a.approved)?;
            none()
        }
        C::setUser(u) => {
            rental::set_user(m, who, u.tokenId, u.user, u.expires, now)?;
            none()
        }
        C::listRental(l) => {
            rental::list(m, who, l.tokenId, l.pricePerSecond, l.maxSeconds)?;
            none()
        }
        C::rent(r) => {
            rental::rent(m, who, r.tokenId, r.duration, value, now)?;
            none()
        }
        C::releaseRent(r) => word(rental::release(m, r.tokenId, now)?),
        C::mint(c) => word(economy::provider_mint(m, who, &c, now)?),
        C::fund(f) => {
            economy::fund(m, who, f.tokenId, f.units, value, now)?;
            none()
        }
        C::offer(o) => word(economy::offer(m, who, &o, now)?),
        C::withdrawOffer(o) => {
            economy::withdraw_offer(m, who, o.offerId)?;
            none()
        }
        C::buy(b) => word(economy::buy(m, who, b.offerId, b.units, value, now)?),
        C::issue(i) => word(economy::issue(m, who, &i, now)?),
        C::setRoyalty(r) => {
            economy::set_royalty(m, who, r.node, r.bps)?;
            none()
        }
        C::renewSubscription(r) => {
            economy::renew(m, r.tokenId, r.duration, value, now)?;
            none()
        }
        C::cancelSubscription(c) => {
            economy::cancel(m, who, c.tokenId, now)?;
            none()
        }
        C::refund(r) => word(economy::refund(m, r.tokenId, now)?),
        C::drawForPool(d) => {
            let (holder, drawn) = settle::draw_for_pool(m, who, &d)?;
            ISockets::drawForPoolCall::abi_encode_returns(&ISockets::drawForPoolReturn {
                holder,
                drawn,
            })
            .into()
        }
        C::settle(s) => {
            let (settled, charged) = settle::settle_all(m, who, &s.sockets, &s.receipts)?;
            ISockets::settleCall::abi_encode_returns(&ISockets::settleReturn { settled, charged })
                .into()
        }
        other => view(m, other, now)?,
    })
}

fn view(m: &mut Metered<'_>, c: ISockets::ISocketsCalls, now: u64) -> Result<Bytes, ModuleError> {
    use storage::{socket as f, OFFERS_MADE, OPERATORS, SOCKETS};
    use ISockets::ISocketsCalls as C;
    Ok(match c {
        C::balanceOf(b) => word(erc721::balance_of(m, b.owner)?),
        C::ownerOf(o) => word(erc721::owner_of(m, o.tokenId)?),
        C::getApproved(g) => word(erc721::approved(m, g.tokenId)?),
        C::isApprovedForAll(a) => word(OPERATORS.get(m, &a.owner, &a.operator)?),
        C::supportsInterface(s) => word(INTERFACES.contains(&s.interfaceId.0)),
        C::royaltyInfo(r) => {
            let (receiver, amount) = economy::royalty(m, r.tokenId, r.salePrice)?;
            ISockets::royaltyInfoCall::abi_encode_returns(&ISockets::royaltyInfoReturn {
                receiver,
                royaltyAmount: amount,
            })
            .into()
        }
        C::name(_) => word("EMC computing sockets".to_string()),
        C::symbol(_) => word("SOCKET".to_string()),
        C::tokenURI(t) => word(uri::token_uri(m, t.tokenId, now)?),
        C::totalSupply(_) => word(erc721::total_supply(m)?),
        C::tokenByIndex(t) => word(erc721::token_by_index(m, t.index)?),
        C::tokenOfOwnerByIndex(t) => word(erc721::token_of_owner_by_index(m, t.owner, t.index)?),
        C::userOf(u) => {
            erc721::owner_of(m, u.tokenId)?;
            word(rental::user_of(m, u.tokenId, now)?)
        }
        C::userExpires(u) => {
            erc721::owner_of(m, u.tokenId)?;
            word(U256::from(SOCKETS.get::<u64>(
                m,
                &u.tokenId,
                f::USER_EXPIRES,
            )?))
        }
        C::expiresAt(e) => {
            erc721::owner_of(m, e.tokenId)?;
            word(SOCKETS.get::<u64>(m, &e.tokenId, f::EXPIRES)?)
        }
        C::isRenewable(r) => {
            erc721::owner_of(m, r.tokenId)?;
            word(!SOCKETS.get::<U256>(m, &r.tokenId, f::RENEWAL)?.is_zero())
        }
        C::socket(s) => {
            ISockets::socketCall::abi_encode_returns(&economy::info(m, s.tokenId, now)?).into()
        }
        C::offerInfo(o) => {
            ISockets::offerInfoCall::abi_encode_returns(&economy::offer_info(m, o.offerId)?).into()
        }
        C::offerCount(_) => word(U256::from(OFFERS_MADE.get(m)?)),
        C::check(c) => ISockets::checkCall::abi_encode_returns(&settle::check_all(
            m,
            c.router,
            &c.sockets,
            &c.receipts,
        )?)
        .into(),
        C::isSettled(s) => word(storage::SETTLED.get(m, &s.receiptId)?),
        C::spent(s) => word(storage::SPENT.get(m, &s.keyId)?),
        _ => return Err(revert("not a view")),
    })
}

/// `safeTransferFrom`: the transfer, then `onERC721Received` on a contract recipient
/// (the trampoline skips accounts without code), which must answer its selector.
fn safe_transfer(
    m: &mut Metered<'_>,
    caller: Address,
    from: Address,
    to: Address,
    id: U256,
    data: Bytes,
    now: u64,
) -> Result<(), ModuleError> {
    erc721::transfer(m, caller, from, to, id, |m, h| {
        rental::before_transfer(m, id, h, now)
    })?;
    let hook = IERC721Receiver::onERC721ReceivedCall {
        operator: caller,
        from,
        tokenId: id,
        data,
    };
    m.call_out(CallOut {
        target: to,
        data: hook.abi_encode().into(),
        expected: IERC721Receiver::onERC721ReceivedCall::SELECTOR,
        refusal: crate::revert_data(&format!(
            "Sockets: {to} does not accept ERC-721 tokens (onERC721Received)"
        )),
    })
}

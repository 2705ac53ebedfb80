//! The `Tasks` system contract: clients' escrow, and settlement of compute calls.
//!
//! A client deposits native EMC into escrow (`deposit`). To call the network through a
//! router it signs a **grant** with its Ethereum account (EIP-191 `personal_sign` over
//! the readable text of [`grant_message`], so any wallet can make one): the chain, the
//! router it trusts (or any), a nonce, an expiry, a spending limit, and optionally the
//! one request it pays for. An API key is a grant for any request; a per-request
//! signature is a grant bound to one request hash, so a router cannot reuse it.
//!
//! For each call the router forwards it gives the node a fresh call id; the node signs
//! its result over the request hash, that call id, the result hash and its metering
//! (`emc_protocol::ResultClaim`, rebuilt from the receipt by [`claim_of`] and checked
//! over the protocol's own [`emc_protocol::ResultClaim::signing_bytes`], the one claim
//! encoding nodes and this module share). A **receipt** is the pair: the client's grant and
//! signature, and the node's claim and signature. The router batches receipts into
//! `settle`; for each one the module
//!
//! 1. recovers the client's account from the grant signature and checks the chain,
//!    the router, the expiry (plus [`SETTLE_WINDOW`] for batching) and, for a
//!    one-request grant, the request hash;
//! 2. verifies the node's ed25519 signature over its claim;
//! 3. reads the node's owner and its registered price for the app from the Registry;
//! 4. charges `units × price` to the node owner plus the router's fee of
//!    [`ROUTER_FEE_BPS`], refusing a receipt already settled (its id is
//!    `keccak(grantId, callId)`), one that would take the grant past its limit, one
//!    the escrow cannot cover, one whose node metered more than the budget it signed
//!    (`units > maxUnits`), and one that costs more than the router reserved for it
//!    (`maxCost`, at most the caller's cap: a price raised after the call cannot
//!    charge the client more than it allowed).
//!
//! A grant signed by a **session key** (`crate::sessions`, opened by Sign-In with
//! Ethereum) pays from the session's account, only while the session lasts and for
//! the apps it allows, and every grant of one session counts against one spending
//! counter ([`crate::sessions::spend_id`]) capped by the session's limit.
//!
//! A receipt that fails a check is skipped with a `Rejected` event naming the reason,
//! so one bad receipt does not sink the batch. The client pays exactly what the node
//! and the router receive; the router's reservation of a call's price cap is released
//! off chain once the receipt settles (nothing beyond the charge ever leaves escrow).
//!
//! `check(router, receipts)` runs every one of those checks on a batch without
//! writing anything and returns the reason each receipt would be refused (empty for
//! one that would settle): routers call it before they send a settlement, so they
//! never pay gas for receipts the chain must refuse.
//!
//! Withdrawals wait [`WITHDRAW_DELAY`] blocks after `requestWithdraw`, and settlement
//! may still draw on the amount waiting, so a client cannot empty its escrow under
//! calls that routers have already served.

use crate::kit::abi::emit;
use crate::kit::slots::Mapping;
use crate::registry::RegistryModule;
use crate::{Metered, ModuleCall, ModuleError};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{sol, SolCall, SolInterface, SolValue};
use std::collections::BTreeMap;

sol! {
    /// The ABI at `TASKS_ADDRESS`.
    #[sol(all_derives)]
    interface ITasks {
        /// What a client's account signs to let a router spend its escrow.
        struct Grant {
            uint64 chainId;
            /// The router allowed to settle it; zero: any.
            address router;
            uint64 nonce;
            /// Unix seconds.
            uint64 expires;
            /// Most wei all calls under this grant may cost together.
            uint256 limit;
            /// The one request hash it pays for; zero: any request (an API key).
            bytes32 request;
        }

        /// A doubly signed call: the client's grant and the node's signed result.
        struct Receipt {
            Grant grant;
            /// 65 bytes (r, s, v) by the client's account over `grant_message(grant)`.
            bytes grantSignature;
            string app;
            bytes32 requestHash;
            bytes32 callId;
            bytes32 resultHash;
            bytes32 nodeId;
            /// emc_protocol::Unit: 0 call, 1 fuel, 2 tokens.
            uint8 unit;
            uint64 units;
            uint64 bytesOut;
            uint64 wallUs;
            /// The budget in units the call was sent with; the node signs it.
            uint64 maxUnits;
            /// 64 bytes by the node key over the claim.
            bytes nodeSignature;
            /// What the router reserved for the call (never more than the caller's
            /// cap): the most it may cost.
            uint256 maxCost;
        }

        event Deposited(address indexed account, uint256 amount);
        event WithdrawRequested(address indexed account, uint256 amount, uint64 unlockAt);
        event Withdrawn(address indexed account, uint256 amount);
        event Settled(bytes32 indexed receiptId, address indexed account, bytes32 indexed nodeId, address router, uint256 nodeAmount, uint256 routerFee);
        event Rejected(bytes32 indexed receiptId, string reason);
        /// The Pools module drew `amount` from `account`'s escrow for a job.
        event Drawn(bytes32 indexed receiptId, address indexed account, address router, uint256 amount);

        function deposit() external payable;
        function requestWithdraw(uint256 amount) external;
        function withdraw() external;
        function settle(Receipt[] receipts) external returns (uint256 settled, uint256 charged);
        /// Why each receipt would be refused if `router` settled the batch now ("" for
        /// one that would settle). Writes nothing.
        function check(address router, Receipt[] receipts) external view returns (string[] reasons);

        /// Only the Pools module: draws `amount` from the escrow of the grant's signer
        /// into the caller for a job `drawId` that `router` settles, with every check a
        /// call's receipt gets. Returns the account.
        function draw(address router, Grant grant, bytes grantSignature, bytes32 drawId, bytes32 requestHash, uint256 amount) external returns (address account);

        function escrowOf(address account) external view returns (uint256 balance, uint256 pending, uint64 unlockAt);
        function spent(bytes32 grantId) external view returns (uint256);
        function isSettled(bytes32 receiptId) external view returns (bool);
        function routerFeeBps() external view returns (uint64);
    }
}

/// The router's fee, in basis points of the node's charge, paid by the client on top.
pub const ROUTER_FEE_BPS: u64 = 500;
/// Blocks between `requestWithdraw` and `withdraw`.
pub const WITHDRAW_DELAY: u64 = 30;
/// Seconds after a grant's expiry during which its receipts may still be settled.
pub const SETTLE_WINDOW: u64 = 3_600;
/// Most receipts in one `settle`.
pub const MAX_RECEIPTS: usize = 512;

/// Storage, in Solidity's layout (accounts keyed by their left-padded word).
const BALANCE: Mapping<B256, U256> = Mapping::at(0);
/// `[account]` = the amount waiting to be withdrawn.
const PENDING: Mapping<B256, U256> = Mapping::at(1);
/// `[account]` = the height the pending amount unlocks at.
const UNLOCK: Mapping<B256, U256> = Mapping::at(2);
/// `[grantId]` = what the grant has spent.
const SPENT: Mapping<B256, U256> = Mapping::at(3);
/// `[receiptId]` = 1 once settled.
const SETTLED: Mapping<B256, U256> = Mapping::at(4);

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Tasks", why)
}

/// The text a client's account signs (EIP-191) to make a grant. Readable, so a wallet
/// shows what it allows.
pub fn grant_message(g: &ITasks::Grant) -> String {
    let or_any = |zero: bool, s: String| if zero { "any".to_string() } else { s };
    format!(
        "EMC compute grant\nchain: {}\nrouter: {}\nnonce: {}\nexpires: {}\nlimit: {} wei\nrequest: {}",
        g.chainId,
        or_any(g.router.is_zero(), g.router.to_checksum(None)),
        g.nonce,
        g.expires,
        g.limit,
        or_any(g.request.is_zero(), g.request.to_string()),
    )
}

/// The Tasks module's grant under another module's ABI name (a socket key's grant, a
/// pool job's grant): the same tuple, converted field for field both ways, by value
/// and by reference.
macro_rules! same_grant {
    ($other:path) => {
        impl From<&$other> for $crate::tasks::ITasks::Grant {
            fn from(g: &$other) -> Self {
                Self {
                    chainId: g.chainId,
                    router: g.router,
                    nonce: g.nonce,
                    expires: g.expires,
                    limit: g.limit,
                    request: g.request,
                }
            }
        }
        impl From<$other> for $crate::tasks::ITasks::Grant {
            fn from(g: $other) -> Self {
                (&g).into()
            }
        }
        impl From<&$crate::tasks::ITasks::Grant> for $other {
            fn from(g: &$crate::tasks::ITasks::Grant) -> Self {
                Self {
                    chainId: g.chainId,
                    router: g.router,
                    nonce: g.nonce,
                    expires: g.expires,
                    limit: g.limit,
                    request: g.request,
                }
            }
        }
        impl From<$crate::tasks::ITasks::Grant> for $other {
            fn from(g: $crate::tasks::ITasks::Grant) -> Self {
                (&g).into()
            }
        }
    };
}
pub(crate) use same_grant;

/// A grant's id: the account and the grant's fields, not its signature (which could be
/// re-encoded).
pub fn grant_id(account: Address, g: &ITasks::Grant) -> B256 {
    keccak256((account, g.clone()).abi_encode())
}

/// A settled call's id: each call id counts once per grant.
pub fn receipt_id(grant_id: B256, call_id: B256) -> B256 {
    keccak256([grant_id.as_slice(), call_id.as_slice()].concat())
}

/// The account that signed a grant.
pub fn grant_signer(g: &ITasks::Grant, signature: &[u8]) -> Result<Address, String> {
    let sig = alloy_primitives::Signature::try_from(signature)
        .map_err(|_| "the grant signature is not 65 bytes of r, s, v".to_string())?;
    sig.recover_address_from_msg(grant_message(g).as_bytes())
        .map_err(|e| format!("the grant signature does not recover: {e}"))
}

/// The node's claim a receipt carries. A receipt of today's ABI carries a version-1
/// claim (no extensions); the unit is the byte `emc_protocol::Unit` encodes to.
pub fn claim_of(r: &ITasks::Receipt) -> Result<emc_protocol::ResultClaim, String> {
    use emc_protocol::{Metering, NodeId, Unit};
    let unit = match r.unit {
        0 => Unit::Call,
        1 => Unit::Fuel,
        2 => Unit::Tokens,
        u => return Err(format!("unit {u} is none of 0 call, 1 fuel, 2 tokens")),
    };
    Ok(emc_protocol::ResultClaim {
        request_hash: r.requestHash,
        call: r.callId,
        result_hash: r.resultHash,
        node: NodeId(r.nodeId),
        metering: Metering {
            unit,
            units: r.units,
            bytes: r.bytesOut,
            wall_us: r.wallUs,
        },
        max_units: r.maxUnits,
        extensions: vec![],
    })
}

/// The charge of a call: the node's amount and the router's fee.
pub fn charge(units: u64, price: U256) -> (U256, U256) {
    let amount = U256::from(units).saturating_mul(price);
    let fee = amount.saturating_mul(U256::from(ROUTER_FEE_BPS)) / U256::from(10_000u64);
    (amount, fee)
}

/// What `units` cost in all: the node's amount plus the router's fee.
pub fn total(units: u64, price: U256) -> U256 {
    let (amount, fee) = charge(units, price);
    amount + fee
}

/// The most units whose [`total`] at `price` fits in `budget` (`u64::MAX` when the
/// price is zero). A budget that is a whole number of units' cost buys exactly that
/// many; otherwise the remainder is less than one unit's cost.
pub fn units_within(budget: U256, price: U256) -> u64 {
    if price.is_zero() {
        return u64::MAX;
    }
    // total(u) = u·p + ⌊u·p·f / 10⁴⌋ = ⌊u·p·(10⁴ + f) / 10⁴⌋, so the largest u with
    // total(u) ≤ B is ⌊(10⁴·(B + 1) − 1) / (p·(10⁴ + f))⌋.
    let scale = U256::from(10_000u64);
    let num = scale
        .saturating_mul(budget.saturating_add(U256::from(1)))
        .saturating_sub(U256::from(1));
    let den = price.saturating_mul(U256::from(10_000 + ROUTER_FEE_BPS));
    let u: u64 = (num / den).saturating_to();
    // Saturated arithmetic near U256::MAX could overshoot; never answer above.
    if total(u, price) > budget {
        return u.saturating_sub(1);
    }
    u
}

/// The storage a genesis allocates to give `account` an escrow balance (the Tasks
/// module's own balance must hold the sum): `(slot, value)`.
pub fn genesis_escrow(account: Address, amount: U256) -> (B256, B256) {
    (BALANCE.slot(&account.into_word()).into(), amount.into())
}

pub struct TasksModule;

impl TasksModule {
    pub fn call(m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        let decoded = ITasks::ITasksCalls::abi_decode(call.input)
            .map_err(|_| revert("unknown function or bad arguments"))?;
        use ITasks::ITasksCalls as C;
        let writes = matches!(
            decoded,
            C::deposit(_) | C::requestWithdraw(_) | C::withdraw(_) | C::settle(_) | C::draw(_)
        );
        if let C::check(c) = &decoded {
            if c.receipts.len() > MAX_RECEIPTS {
                return Err(revert(format!(
                    "at most {MAX_RECEIPTS} receipts per settlement"
                )));
            }
        }
        if writes && call.is_static {
            return Err(revert("state change in a static call"));
        }
        if !call.value.is_zero() && !matches!(decoded, C::deposit(_)) {
            return Err(revert("only deposit is payable"));
        }
        let who = call.caller.into_word();
        Ok(match decoded {
            C::deposit(_) => {
                if call.value.is_zero() {
                    return Err(revert("deposit some value"));
                }
                let b = BALANCE.get(m, &who)?;
                BALANCE.set(m, &who, &(b + call.value))?;
                emit(
                    m,
                    ITasks::Deposited {
                        account: call.caller,
                        amount: call.value,
                    },
                );
                Bytes::new()
            }
            C::requestWithdraw(c) => {
                let b = BALANCE.get(m, &who)?;
                if c.amount.is_zero() || c.amount > b {
                    return Err(revert(format!(
                        "cannot withdraw {} wei of a balance of {b}",
                        c.amount
                    )));
                }
                let pending = PENDING.get(m, &who)?;
                let unlock = m.host().height() + WITHDRAW_DELAY;
                BALANCE.set(m, &who, &(b - c.amount))?;
                PENDING.set(m, &who, &(pending + c.amount))?;
                UNLOCK.set(m, &who, &U256::from(unlock))?;
                emit(
                    m,
                    ITasks::WithdrawRequested {
                        account: call.caller,
                        amount: pending + c.amount,
                        unlockAt: unlock,
                    },
                );
                Bytes::new()
            }
            C::withdraw(_) => {
                let pending = PENDING.get(m, &who)?;
                let unlock = UNLOCK.get(m, &who)?.saturating_to::<u64>();
                if pending.is_zero() {
                    return Err(revert("nothing to withdraw; requestWithdraw first"));
                }
                if m.host().height() < unlock {
                    return Err(revert(format!("the withdrawal unlocks at block {unlock}")));
                }
                PENDING.set(m, &who, &U256::ZERO)?;
                m.pay(call.caller, pending)?;
                emit(
                    m,
                    ITasks::Withdrawn {
                        account: call.caller,
                        amount: pending,
                    },
                );
                Bytes::new()
            }
            C::settle(c) => {
                if c.receipts.len() > MAX_RECEIPTS {
                    return Err(revert(format!(
                        "at most {MAX_RECEIPTS} receipts per settlement"
                    )));
                }
                let (settled, charged) = settle_all(m, call.caller, &c.receipts)?;
                ITasks::settleCall::abi_encode_returns(&ITasks::settleReturn { settled, charged })
                    .into()
            }
            C::draw(c) => {
                if call.caller != crate::POOLS_ADDRESS {
                    return Err(revert("only the Pools module draws on an escrow"));
                }
                ITasks::drawCall::abi_encode_returns(&draw(m, &c)?).into()
            }
            C::check(c) => {
                let reasons = check_all(m, c.router, &c.receipts)?;
                ITasks::checkCall::abi_encode_returns(&reasons).into()
            }
            C::escrowOf(c) => {
                let k = c.account.into_word();
                ITasks::escrowOfCall::abi_encode_returns(&ITasks::escrowOfReturn {
                    balance: BALANCE.get(m, &k)?,
                    pending: PENDING.get(m, &k)?,
                    unlockAt: UNLOCK.get(m, &k)?.saturating_to(),
                })
                .into()
            }
            C::spent(c) => ITasks::spentCall::abi_encode_returns(&SPENT.get(m, &c.grantId)?).into(),
            C::isSettled(c) => {
                ITasks::isSettledCall::abi_encode_returns(&!SETTLED.get(m, &c.receiptId)?.is_zero())
                    .into()
            }
            C::routerFeeBps(_) => {
                ITasks::routerFeeBpsCall::abi_encode_returns(&ROUTER_FEE_BPS).into()
            }
        })
    }
}

/// What one `settle` has read and owes, so each account's escrow, each grant's
/// spending and each node's registration is read once and written once per batch,
/// and each payee is paid once: the per-receipt cost is its two signatures and its
/// settled flag.
#[derive(Default)]
struct Batch {
    escrow: BTreeMap<Address, (U256, U256)>,
    spent: BTreeMap<B256, U256>,
    prices: BTreeMap<(B256, String), Option<(Address, U256)>>,
    pay: BTreeMap<Address, U256>,
    /// Receipts this batch settles (a second copy in the same batch is refused).
    settled: std::collections::BTreeSet<B256>,
}

impl Batch {
    fn escrow(&mut self, m: &mut Metered<'_>, a: Address) -> Result<(U256, U256), ModuleError> {
        if let Some(e) = self.escrow.get(&a) {
            return Ok(*e);
        }
        let w = a.into_word();
        let e = (BALANCE.get(m, &w)?, PENDING.get(m, &w)?);
        self.escrow.insert(a, e);
        Ok(e)
    }

    fn spent(&mut self, m: &mut Metered<'_>, gid: B256) -> Result<U256, ModuleError> {
        if let Some(s) = self.spent.get(&gid) {
            return Ok(*s);
        }
        let s = SPENT.get(m, &gid)?;
        self.spent.insert(gid, s);
        Ok(s)
    }

    fn price(
        &mut self,
        m: &mut Metered<'_>,
        node: B256,
        app: &str,
    ) -> Result<Option<(Address, U256)>, ModuleError> {
        let k = (node, app.to_string());
        if let Some(p) = self.prices.get(&k) {
            return Ok(*p);
        }
        let p = RegistryModule::price(m, node, app)?;
        self.prices.insert(k, p);
        Ok(p)
    }

    /// Writes the escrows and spending back and pays every payee.
    fn finish(self, m: &mut Metered<'_>) -> Result<(), ModuleError> {
        for (a, (b, p)) in self.escrow {
            let w = a.into_word();
            BALANCE.set(m, &w, &b)?;
            PENDING.set(m, &w, &p)?;
        }
        for (g, s) in self.spent {
            SPENT.set(m, &g, &s)?;
        }
        for (to, amount) in self.pay {
            if !amount.is_zero() {
                m.pay(to, amount)?;
            }
        }
        Ok(())
    }
}

/// Settles every receipt of a batch; returns how many settled and their total.
fn settle_all(
    m: &mut Metered<'_>,
    router: Address,
    receipts: &[ITasks::Receipt],
) -> Result<(U256, U256), ModuleError> {
    let mut batch = Batch::default();
    let (mut settled, mut charged) = (U256::ZERO, U256::ZERO);
    for r in receipts {
        let (rid, verdict) = evaluate(m, &mut batch, router, r)?;
        match verdict {
            Ok(c) => {
                SETTLED.set(m, &rid, &U256::from(1))?;
                settled += U256::from(1);
                charged += c.amount + c.fee;
                emit(
                    m,
                    ITasks::Settled {
                        receiptId: rid,
                        account: c.account,
                        nodeId: r.nodeId,
                        router,
                        nodeAmount: c.amount,
                        routerFee: c.fee,
                    },
                );
            }
            Err(reason) => emit(
                m,
                ITasks::Rejected {
                    receiptId: rid,
                    reason,
                },
            ),
        }
    }
    batch.finish(m)?;
    Ok((settled, charged))
}

/// [`settle_all`] without writing: the reason each receipt would be refused.
fn check_all(
    m: &mut Metered<'_>,
    router: Address,
    receipts: &[ITasks::Receipt],
) -> Result<Vec<String>, ModuleError> {
    let mut batch = Batch::default();
    receipts
        .iter()
        .map(|r| {
            Ok(evaluate(m, &mut batch, router, r)?
                .1
                .err()
                .unwrap_or_default())
        })
        .collect()
}

/// What a receipt that passes every check charges.
struct Charge {
    account: Address,
    amount: U256,
    fee: U256,
}

/// Checks one receipt against the chain and the batch so far and, if it passes, books
/// its charge in the batch (escrow, spending, payees). Returns its id and the charge,
/// or why it is refused.
fn evaluate(
    m: &mut Metered<'_>,
    batch: &mut Batch,
    router: Address,
    r: &ITasks::Receipt,
) -> Result<(B256, Result<Charge, String>), ModuleError> {
    // Two signature checks, priced like the precompiles that do them.
    m.charge_signature()?;
    m.charge_signature()?;
    let g = &r.grant;
    let account = grant_signer(g, &r.grantSignature);
    let gid = account
        .as_ref()
        .map(|a| grant_id(*a, g))
        .unwrap_or_default();
    let rid = receipt_id(gid, r.callId);
    let Passed {
        account,
        owner,
        amount,
        fee,
        spend,
    } = match check(m, batch, router, r, account, rid) {
        Ok(c) => c,
        Err(Reject::Fatal(e)) => return Err(e),
        Err(Reject::Skip(reason)) => return Ok((rid, Err(reason))),
    };
    let total = amount + fee;
    let (b, p) = batch.escrow(m, account)?;
    let from_balance = total.min(b);
    batch
        .escrow
        .insert(account, (b - from_balance, p - (total - from_balance)));
    let spent = batch.spent(m, spend)?;
    batch.spent.insert(spend, spent + total);
    batch.settled.insert(rid);
    *batch.pay.entry(owner).or_default() += amount;
    *batch.pay.entry(router).or_default() += fee;
    Ok((
        rid,
        Ok(Charge {
            account,
            amount,
            fee,
        }),
    ))
}

enum Reject {
    Skip(String),
    Fatal(ModuleError),
}

impl From<ModuleError> for Reject {
    fn from(e: ModuleError) -> Self {
        Reject::Fatal(e)
    }
}

/// What a receipt that passes every check books: who pays, who is paid, and the
/// spending counter it counts against.
struct Passed {
    account: Address,
    owner: Address,
    amount: U256,
    fee: U256,
    spend: B256,
}

/// Who pays for a grant its signer signed: the signer itself, or, when the signer is
/// a session key (`crate::sessions`), the session's account within the session's
/// terms. Returns the account, the spending counter and the limit.
fn payer_of(
    m: &mut Metered<'_>,
    signer: Address,
    g: &ITasks::Grant,
    app: &str,
) -> Result<Result<(Address, B256, U256), String>, ModuleError> {
    let Some(p) = crate::sessions::payer(m, signer)? else {
        return Ok(Ok((signer, grant_id(signer, g), g.limit)));
    };
    if p.kind != crate::sessions::ESCROW {
        return Ok(Err(format!(
            "session key {signer} pays from socket {}: it signs socket keys",
            p.socket
        )));
    }
    if let Some(why) = p.refusal(app, m.host().timestamp(), SETTLE_WINDOW) {
        return Ok(Err(why));
    }
    Ok(Ok((
        p.account,
        crate::sessions::spend_id(signer),
        g.limit.min(p.limit),
    )))
}

/// Every check of a receipt: its account, the node owner, the amount and the fee.
fn check(
    m: &mut Metered<'_>,
    batch: &mut Batch,
    router: Address,
    r: &ITasks::Receipt,
    account: Result<Address, String>,
    rid: B256,
) -> Result<Passed, Reject> {
    let skip = |s: String| Err(Reject::Skip(s));
    let g = &r.grant;
    let signer = match account {
        Ok(a) => a,
        Err(e) => return skip(e),
    };
    if let Some(why) = grant_refusal(m, g, router, r.requestHash) {
        return skip(why);
    }
    let (account, spend, limit) = match payer_of(m, signer, g, &r.app)? {
        Ok(p) => p,
        Err(why) => return skip(why),
    };
    let node_sig: [u8; 64] = match r.nodeSignature.as_ref().try_into() {
        Ok(s) => s,
        Err(_) => return skip("the node signature is not 64 bytes".into()),
    };
    let claim = match claim_of(r) {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let verified = ed25519_consensus::VerificationKey::try_from(r.nodeId.0)
        .and_then(|vk| vk.verify(&node_sig.into(), &claim.signing_bytes()));
    if verified.is_err() {
        return skip("the node did not sign this result".into());
    }
    let Some((owner, price)) = batch.price(m, r.nodeId, &r.app)? else {
        return skip(format!("the node is not registered for {:?}", r.app));
    };
    if batch.settled.contains(&rid) || !SETTLED.get(m, &rid)?.is_zero() {
        return skip("already settled".into());
    }
    if r.units > r.maxUnits {
        return skip(format!(
            "the node metered {} units, more than the call's budget of {}",
            r.units, r.maxUnits
        ));
    }
    let (amount, fee) = charge(r.units, price);
    let total = amount + fee;
    if total > r.maxCost {
        return skip(format!(
            "the call costs {total} wei at the node's price, more than the {} the router reserved for it",
            r.maxCost
        ));
    }
    let spent = batch.spent(m, spend)?;
    if spent + total > limit {
        return skip(format!(
            "the grant's limit of {limit} wei would be passed ({spent} spent, {total} more)"
        ));
    }
    let (b, p) = batch.escrow(m, account)?;
    if b + p < total {
        return skip(format!(
            "the escrow holds {} wei, the call costs {total}",
            b + p
        ));
    }
    Ok(Passed {
        account,
        owner,
        amount,
        fee,
        spend,
    })
}

/// Why a grant cannot pay for request `request` settled by `router` now: another
/// chain, another router, expired past the settle window, or bound to another
/// request. Every receipt and every job draw is checked by this one rule.
pub(crate) fn grant_refusal(
    m: &Metered<'_>,
    g: &ITasks::Grant,
    router: Address,
    request: B256,
) -> Option<String> {
    if g.chainId != m.host().chain_id() {
        return Some(format!("the grant is for chain {}", g.chainId));
    }
    if !g.router.is_zero() && g.router != router {
        return Some(format!("the grant names router {}", g.router));
    }
    if m.host().timestamp() > g.expires.saturating_add(SETTLE_WINDOW) {
        return Some("the grant expired".into());
    }
    if !g.request.is_zero() && g.request != request {
        return Some("the grant pays for another request".into());
    }
    None
}

/// Draws a job's cost from the grant signer's escrow into the Pools module: the
/// grant's checks as for a receipt (signer, chain, router, expiry, request), once per
/// `(grant, drawId)`, within the grant's limit and the escrow (balance first, then
/// the amount waiting to be withdrawn).
fn draw(m: &mut Metered<'_>, c: &ITasks::drawCall) -> Result<Address, ModuleError> {
    m.charge_signature()?;
    let g = &c.grant;
    let account = grant_signer(g, &c.grantSignature).map_err(revert)?;
    if let Some(why) = grant_refusal(m, g, c.router, c.requestHash) {
        return Err(revert(why));
    }
    let gid = grant_id(account, g);
    let rid = receipt_id(gid, c.drawId);
    if !SETTLED.get(m, &rid)?.is_zero() {
        return Err(revert("already settled"));
    }
    let spent = SPENT.get(m, &gid)?;
    if spent + c.amount > g.limit {
        return Err(revert(format!(
            "the grant's limit of {} wei would be passed ({spent} spent, {} more)",
            g.limit, c.amount
        )));
    }
    let w = account.into_word();
    let (b, p) = (BALANCE.get(m, &w)?, PENDING.get(m, &w)?);
    if b + p < c.amount {
        return Err(revert(format!(
            "the escrow holds {} wei, the job costs {}",
            b + p,
            c.amount
        )));
    }
    let from_balance = c.amount.min(b);
    BALANCE.set(m, &w, &(b - from_balance))?;
    PENDING.set(m, &w, &(p - (c.amount - from_balance)))?;
    SPENT.set(m, &gid, &(spent + c.amount))?;
    SETTLED.set(m, &rid, &U256::from(1))?;
    m.pay(crate::POOLS_ADDRESS, c.amount)?;
    emit(
        m,
        ITasks::Drawn {
            receiptId: rid,
            account,
            router: c.router,
            amount: c.amount,
        },
    );
    Ok(account)
}

impl crate::kit::SystemModule for TasksModule {
    fn address(&self) -> Address {
        crate::TASKS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Tasks"
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        TasksModule::call(m, call)
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! Settlement of calls paid from a socket's credits.
//!
//! A socket key is a grant, the Tasks module's `Grant` fields, signed (EIP-191) over
//! [`socket_grant_message`], which names the socket. The router serves such a call
//! only on the socket's node and app, and settles its receipt here with
//! `settle(sockets, receipts)`. For each receipt the module checks
//!
//! 1. the grant: its signer, the chain, the router, the expiry (plus the settle
//!    window), a one-request grant's request;
//! 2. that the signer holds the socket **now**: its ERC-4907 user while one is set,
//!    otherwise its owner (a receipt of a call served before a sale or before a rental
//!    ended, not yet settled, is refused: the router settles every block, and the
//!    holder's credits are never spent on a key they did not sign);
//! 3. the node's ed25519 signature over its claim, the socket's node and app;
//! 4. the units used in the socket's unit ([`units_used`]) against the socket's
//!    credits, the node's budget, the router's reservation (`maxCost`) and the key's
//!    limit, and that the receipt was not settled before.
//!
//! A receipt that passes takes exactly its units from the socket's credits; their
//! price, already held by the module, goes to the node's owner less the router's fee
//! ([`crate::tasks::ROUTER_FEE_BPS`] of it), which goes to the router. A receipt that
//! fails is skipped with a `Rejected` event naming the reason.

use super::erc721::owner_of;
use super::storage::{socket as f, SETTLED, SOCKETS, SPENT};
use super::{rental, revert, ISockets, Unit};
use crate::kit::abi::emit;
use crate::registry::RegistryModule;
use crate::tasks::{self, ITasks};
use crate::{Metered, ModuleError};
use alloy_primitives::{Address, B256, U256};
use std::collections::BTreeMap;

/// The text a socket's holder signs (EIP-191) to make a key for it.
pub fn socket_grant_message(g: &ITasks::Grant, socket: U256) -> String {
    let or_any = |zero: bool, s: String| if zero { "any".to_string() } else { s };
    format!(
        "EMC socket grant\nchain: {}\nrouter: {}\nsocket: {socket}\nnonce: {}\nexpires: {}\nlimit: {} wei\nrequest: {}",
        g.chainId,
        or_any(g.router.is_zero(), g.router.to_checksum(None)),
        g.nonce,
        g.expires,
        g.limit,
        or_any(g.request.is_zero(), g.request.to_string()),
    )
}

/// The account that signed a socket key's grant.
pub fn socket_grant_signer(
    g: &ITasks::Grant,
    socket: U256,
    signature: &[u8],
) -> Result<Address, String> {
    let sig = alloy_primitives::Signature::try_from(signature)
        .map_err(|_| "the grant signature is not 65 bytes of r, s, v".to_string())?;
    sig.recover_address_from_msg(socket_grant_message(g, socket).as_bytes())
        .map_err(|e| format!("the grant signature does not recover: {e}"))
}

/// A socket key's id: its socket, account and grant.
pub fn socket_grant_id(socket: U256, account: Address, g: &ITasks::Grant) -> B256 {
    alloy_primitives::keccak256(
        [
            socket.to_be_bytes::<32>().as_slice(),
            tasks::grant_id(account, g).as_slice(),
        ]
        .concat(),
    )
}

/// The units of a socket counting `unit` that a call used, from the node's metering
/// (`claim_unit`, `units`, `wall_us`); `budget` is the most the router reserved, in
/// the socket's units. Calls count one each; seconds are the wall time rounded up (at
/// least one, at most the budget); fuel and tokens are the node's own count, and must
/// be what the node meters.
pub fn units_used(
    unit: Unit,
    claim_unit: u8,
    units: u64,
    wall_us: u64,
    budget: u64,
) -> Result<u64, String> {
    match unit {
        Unit::Call => Ok(1),
        Unit::Seconds => Ok(wall_us.div_ceil(1_000_000).clamp(1, budget.max(1))),
        Unit::Fuel | Unit::Tokens if claim_unit == unit as u8 => Ok(units),
        Unit::Fuel | Unit::Tokens => Err(format!(
            "the socket counts {}, the node metered unit {claim_unit}",
            unit.name()
        )),
    }
}

/// The price of `used` units split into the node owner's amount and the router's fee.
pub fn split(used: u64, price: U256) -> (U256, U256) {
    let total = U256::from(used).saturating_mul(price);
    let fee = total.saturating_mul(U256::from(tasks::ROUTER_FEE_BPS)) / U256::from(10_000u64);
    (total - fee, fee)
}

// A socket key's grant is the Tasks module's grant tuple under the Sockets ABI's name.
crate::tasks::same_grant!(ISockets::Grant);

impl From<ISockets::Receipt> for ITasks::Receipt {
    fn from(r: ISockets::Receipt) -> Self {
        ITasks::Receipt {
            grant: r.grant.into(),
            grantSignature: r.grantSignature,
            app: r.app,
            requestHash: r.requestHash,
            callId: r.callId,
            resultHash: r.resultHash,
            nodeId: r.nodeId,
            unit: r.unit,
            units: r.units,
            bytesOut: r.bytesOut,
            wallUs: r.wallUs,
            maxUnits: r.maxUnits,
            nodeSignature: r.nodeSignature,
            maxCost: r.maxCost,
        }
    }
}

impl From<ITasks::Receipt> for ISockets::Receipt {
    fn from(r: ITasks::Receipt) -> Self {
        ISockets::Receipt {
            grant: r.grant.into(),
            grantSignature: r.grantSignature,
            app: r.app,
            requestHash: r.requestHash,
            callId: r.callId,
            resultHash: r.resultHash,
            nodeId: r.nodeId,
            unit: r.unit,
            units: r.units,
            bytesOut: r.bytesOut,
            wallUs: r.wallUs,
            maxUnits: r.maxUnits,
            nodeSignature: r.nodeSignature,
            maxCost: r.maxCost,
        }
    }
}

/// What a batch has read and owes: credits and key spending read once, payees paid
/// once.
#[derive(Default)]
struct Batch {
    credits: BTreeMap<U256, u64>,
    spent: BTreeMap<B256, U256>,
    pay: BTreeMap<Address, U256>,
    settled: std::collections::BTreeSet<B256>,
}

impl Batch {
    fn credits(&mut self, m: &mut Metered<'_>, id: U256) -> Result<u64, ModuleError> {
        if let Some(c) = self.credits.get(&id) {
            return Ok(*c);
        }
        let c = SOCKETS.get(m, &id, f::CREDITS)?;
        self.credits.insert(id, c);
        Ok(c)
    }

    fn spent(&mut self, m: &mut Metered<'_>, gid: B256) -> Result<U256, ModuleError> {
        if let Some(s) = self.spent.get(&gid) {
            return Ok(*s);
        }
        let s = SPENT.get(m, &gid)?;
        self.spent.insert(gid, s);
        Ok(s)
    }

    fn finish(self, m: &mut Metered<'_>) -> Result<(), ModuleError> {
        for (id, c) in self.credits {
            SOCKETS.set(m, &id, f::CREDITS, &c)?;
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

/// One receipt that passes: what it books.
struct Use {
    gid: B256,
    owner: Address,
    used: u64,
    amount: U256,
    fee: U256,
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

fn bounded(sockets: &[U256], receipts: &[ISockets::Receipt]) -> Result<(), ModuleError> {
    if sockets.len() != receipts.len() {
        return Err(revert("one socket per receipt"));
    }
    if receipts.len() > tasks::MAX_RECEIPTS {
        return Err(revert(format!(
            "at most {} receipts per settlement",
            tasks::MAX_RECEIPTS
        )));
    }
    Ok(())
}

/// Settles a batch; returns how many receipts settled and the wei they released.
pub fn settle_all(
    m: &mut Metered<'_>,
    router: Address,
    sockets: &[U256],
    receipts: &[ISockets::Receipt],
) -> Result<(U256, U256), ModuleError> {
    bounded(sockets, receipts)?;
    let mut batch = Batch::default();
    let (mut settled, mut charged) = (U256::ZERO, U256::ZERO);
    for (id, r) in sockets.iter().zip(receipts) {
        let (rid, verdict) = evaluate(m, &mut batch, router, *id, r)?;
        match verdict {
            Ok(u) => {
                SETTLED.set(m, &rid, &true)?;
                settled += U256::from(1);
                charged += u.amount + u.fee;
                emit(
                    m,
                    ISockets::Settled {
                        receiptId: rid,
                        tokenId: *id,
                        nodeId: r.nodeId,
                        router,
                        units: u.used,
                        nodeAmount: u.amount,
                        routerFee: u.fee,
                    },
                );
            }
            Err(reason) => emit(
                m,
                ISockets::Rejected {
                    receiptId: rid,
                    tokenId: *id,
                    reason,
                },
            ),
        }
    }
    batch.finish(m)?;
    Ok((settled, charged))
}

/// [`settle_all`] without writing: why each receipt would be refused ("" if not).
pub fn check_all(
    m: &mut Metered<'_>,
    router: Address,
    sockets: &[U256],
    receipts: &[ISockets::Receipt],
) -> Result<Vec<String>, ModuleError> {
    bounded(sockets, receipts)?;
    let mut batch = Batch::default();
    sockets
        .iter()
        .zip(receipts)
        .map(|(id, r)| {
            Ok(evaluate(m, &mut batch, router, *id, r)?
                .1
                .err()
                .unwrap_or_default())
        })
        .collect()
}

/// Checks one receipt and, if it passes, books it in the batch.
fn evaluate(
    m: &mut Metered<'_>,
    batch: &mut Batch,
    router: Address,
    id: U256,
    r: &ISockets::Receipt,
) -> Result<(B256, Result<Use, String>), ModuleError> {
    m.charge_signature()?;
    m.charge_signature()?;
    let tr: ITasks::Receipt = r.clone().into();
    let signer = socket_grant_signer(&tr.grant, id, &tr.grantSignature);
    let gid = signer
        .as_ref()
        .map(|a| socket_grant_id(id, *a, &tr.grant))
        .unwrap_or_default();
    let rid = tasks::receipt_id(gid, tr.callId);
    let u = match check(m, batch, router, id, &tr, signer, gid, rid) {
        Ok(u) => u,
        Err(Reject::Fatal(e)) => return Err(e),
        Err(Reject::Skip(why)) => return Ok((rid, Err(why))),
    };
    let credits = batch.credits(m, id)?;
    batch.credits.insert(id, credits - u.used);
    let spent = batch.spent(m, u.gid)?;
    batch.spent.insert(u.gid, spent + u.amount + u.fee);
    batch.settled.insert(rid);
    *batch.pay.entry(u.owner).or_default() += u.amount;
    *batch.pay.entry(router).or_default() += u.fee;
    Ok((rid, Ok(u)))
}

#[allow(clippy::too_many_arguments)]
fn check(
    m: &mut Metered<'_>,
    batch: &mut Batch,
    router: Address,
    id: U256,
    r: &ITasks::Receipt,
    signer: Result<Address, String>,
    gid: B256,
    rid: B256,
) -> Result<Use, Reject> {
    let skip = |s: String| Err(Reject::Skip(s));
    let g = &r.grant;
    let signer = match signer {
        Ok(a) => a,
        Err(e) => return skip(e),
    };
    let now = m.host().timestamp();
    if g.chainId != m.host().chain_id() {
        return skip(format!("the grant is for chain {}", g.chainId));
    }
    if !g.router.is_zero() && g.router != router {
        return skip(format!("the grant names router {}", g.router));
    }
    if now > g.expires.saturating_add(tasks::SETTLE_WINDOW) {
        return skip("the grant expired".into());
    }
    if !g.request.is_zero() && g.request != r.requestHash {
        return skip("the grant pays for another request".into());
    }
    if batch.settled.contains(&rid) || SETTLED.get(m, &rid)? {
        return skip("already settled".into());
    }
    if super::storage::HOLDINGS.get(m, &id)?.is_zero() {
        return skip(format!("socket {id} does not exist"));
    }
    let holder = holder(m, id, now)?;
    if signer != holder {
        // A session key the holder opened for this socket signs for the holder.
        match crate::sessions::payer(m, signer)? {
            Some(p)
                if p.kind == crate::sessions::SOCKET && p.socket == id && p.account == holder =>
            {
                if let Some(why) = p.refusal(&r.app, now, tasks::SETTLE_WINDOW) {
                    return skip(why);
                }
            }
            _ => {
                return skip(format!(
                    "the key's signer {signer} does not hold socket {id} ({holder} does)"
                ))
            }
        }
    }
    let node: B256 = SOCKETS.get(m, &id, f::NODE)?;
    let app = SOCKETS.get_str(m, &id, f::APP, super::economy::MAX_APP)?;
    if r.nodeId != node || r.app != app {
        return skip(format!("socket {id} is for {app} on node {node}"));
    }
    let expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    if now > expires.saturating_add(super::economy::settle_window(m)?) {
        return skip(format!("socket {id} ended at {expires}"));
    }
    let sig: [u8; 64] = match r.nodeSignature.as_ref().try_into() {
        Ok(s) => s,
        Err(_) => return skip("the node signature is not 64 bytes".into()),
    };
    let claim = match tasks::claim_of(r) {
        Ok(c) => c,
        Err(why) => return skip(why),
    };
    let verified = ed25519_consensus::VerificationKey::try_from(r.nodeId.0)
        .and_then(|vk| vk.verify(&sig.into(), &claim.signing_bytes()));
    if verified.is_err() {
        return skip("the node did not sign this result".into());
    }
    if r.units > r.maxUnits {
        return skip(format!(
            "the node metered {} units, over its budget of {}",
            r.units, r.maxUnits
        ));
    }
    let unit = Unit::from_u8(SOCKETS.get::<u64>(m, &id, f::UNIT)? as u8)?;
    let price: U256 = SOCKETS.get(m, &id, f::PRICE)?;
    let budget: u64 = if price.is_zero() {
        0
    } else {
        (r.maxCost / price).saturating_to()
    };
    let used = match units_used(unit, r.unit, r.units, r.wallUs, budget) {
        Ok(u) => u,
        Err(why) => return skip(why),
    };
    let credits = batch.credits(m, id)?;
    if used > credits {
        return skip(format!(
            "socket {id} has {credits} credits, the call used {used}"
        ));
    }
    let total = U256::from(used).saturating_mul(price);
    if total > r.maxCost {
        return skip(format!(
            "the call used {total} wei, more than the {} reserved",
            r.maxCost
        ));
    }
    let spent = batch.spent(m, gid)?;
    if spent + total > g.limit {
        return skip(format!(
            "the key's limit of {} wei would be passed",
            g.limit
        ));
    }
    let owner = RegistryModule::owner(m, node)?;
    if owner.is_zero() {
        return skip(format!("node {node} is no longer registered"));
    }
    let (amount, fee) = split(used, price);
    Ok(Use {
        gid,
        owner,
        used,
        amount,
        fee,
    })
}

/// Draws a pool job's cost from a socket of that pool ([`ISockets::drawForPoolCall`]):
/// the grant checked as for a call's receipt, its signer the socket's holder now, the
/// socket a socket of the pool and not past its settle window, once per `(key,
/// drawId)`, rounded up to whole credits within the credits and the key's limit. The
/// credits' price, held by this module, goes to the Pools module.
pub fn draw_for_pool(
    m: &mut Metered<'_>,
    caller: Address,
    c: &ISockets::drawForPoolCall,
) -> Result<(Address, U256), ModuleError> {
    if caller != crate::POOLS_ADDRESS {
        return Err(revert("only the Pools module draws for a pool's job"));
    }
    m.charge_signature()?;
    let id = c.tokenId;
    let g = ITasks::Grant::from(c.grant.clone());
    let signer = socket_grant_signer(&g, id, &c.grantSignature).map_err(revert)?;
    if let Some(why) = tasks::grant_refusal(m, &g, c.router, c.requestHash) {
        return Err(revert(why));
    }
    if super::storage::HOLDINGS.get(m, &id)?.is_zero() {
        return Err(revert(format!("socket {id} does not exist")));
    }
    let now = m.host().timestamp();
    let holder = holder(m, id, now)?;
    if signer != holder {
        return Err(revert(format!(
            "the key's signer {signer} does not hold socket {id} ({holder} does)"
        )));
    }
    let node: B256 = SOCKETS.get(m, &id, f::NODE)?;
    if crate::pools::pool_of_provider(node) != Some(c.poolId) {
        return Err(revert(format!(
            "socket {id} is not a socket of pool {}",
            c.poolId
        )));
    }
    let expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    if now > expires.saturating_add(super::economy::settle_window(m)?) {
        return Err(revert(format!("socket {id} ended at {expires}")));
    }
    let gid = socket_grant_id(id, signer, &g);
    let rid = tasks::receipt_id(gid, c.drawId);
    if SETTLED.get(m, &rid)? {
        return Err(revert("already settled"));
    }
    let price: U256 = SOCKETS.get(m, &id, f::PRICE)?;
    let credits: u64 = SOCKETS.get(m, &id, f::CREDITS)?;
    let units = if price.is_zero() {
        0
    } else {
        c.amount.div_ceil(price).saturating_to::<u64>()
    };
    if units > credits {
        return Err(revert(format!(
            "socket {id} has {credits} credits, the job costs {units}"
        )));
    }
    let drawn = U256::from(units) * price;
    let spent = SPENT.get(m, &gid)?;
    if spent + drawn > g.limit {
        return Err(revert(format!(
            "the key's limit of {} wei would be passed",
            g.limit
        )));
    }
    SOCKETS.set(m, &id, f::CREDITS, &(credits - units))?;
    SPENT.set(m, &gid, &(spent + drawn))?;
    SETTLED.set(m, &rid, &true)?;
    if !drawn.is_zero() {
        m.pay(crate::POOLS_ADDRESS, drawn)?;
    }
    emit(
        m,
        ISockets::DrawnForPool {
            receiptId: rid,
            tokenId: id,
            poolId: c.poolId,
            units,
            amount: drawn,
        },
    );
    Ok((signer, drawn))
}

/// Who may sign for socket `id` at `now`: its user while one is set, else its owner.
pub fn holder(m: &mut Metered<'_>, id: U256, now: u64) -> Result<Address, ModuleError> {
    let user = rental::user_of(m, id, now)?;
    if !user.is_zero() {
        return Ok(user);
    }
    owner_of(m, id)
}

//! The router's book of what its clients owe before the chain has settled it.
//!
//! Before a call is forwarded, its *budget* is reserved: the caller's cap
//! (`x-emc-max-cost`, or the router's default), or less when the client's free escrow
//! (as the chain last showed it, minus everything this router already holds for the
//! client: reservations of calls in flight and charges of served calls not yet
//! settled) or the grant's remaining limit is less. A budget that does not pay for one
//! unit at the cheapest route's price is refused before any node runs. The node is
//! sent the budget in units and stops there, so a call's charge never exceeds its
//! reservation. When the node's signed result arrives the reservation becomes the
//! call's real charge and its receipt waits for the next settlement batch; a call that
//! fails releases its reservation whole, so a retried call is charged once. Once a
//! settlement transaction is in a block the chain's escrow shows the debit and the
//! hold is dropped.

use alloy_primitives::{Address, B256, U256};
use emc_client::keys::ApiKey;
use emc_modules::tasks::ITasks::Receipt;
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Most one-request grants remembered against replay (expired ones are dropped first).
const MAX_SEEN: usize = 1 << 20;

/// What pays for a call: a client's escrow, or a computing socket's credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Payer {
    Account(Address),
    Socket(U256),
}

impl Payer {
    pub fn of(key: &ApiKey) -> Payer {
        match key.socket {
            Some(id) => Payer::Socket(id),
            None => Payer::Account(key.account),
        }
    }
}

impl std::fmt::Display for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payer::Account(a) => write!(f, "the escrow of {a}"),
            Payer::Socket(id) => write!(f, "socket {id}"),
        }
    }
}

/// A served call waiting to be settled.
#[derive(Clone, Debug)]
pub struct Pending {
    pub receipt: Receipt,
    pub payer: Payer,
    pub grant: B256,
    pub total: U256,
}

#[derive(Default)]
struct Inner {
    held: HashMap<Payer, U256>,
    grant_held: HashMap<B256, U256>,
    queue: Vec<Pending>,
    seen: HashMap<B256, u64>,
}

impl Inner {
    fn hold(&mut self, payer: Payer, grant: B256, amount: U256) {
        *self.held.entry(payer).or_default() += amount;
        *self.grant_held.entry(grant).or_default() += amount;
    }

    fn release(&mut self, payer: Payer, grant: B256, amount: U256) {
        if let Some(h) = self.held.get_mut(&payer) {
            *h = h.saturating_sub(amount);
            if h.is_zero() {
                self.held.remove(&payer);
            }
        }
        if let Some(h) = self.grant_held.get_mut(&grant) {
            *h = h.saturating_sub(amount);
            if h.is_zero() {
                self.grant_held.remove(&grant);
            }
        }
    }
}

#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

/// A call's reserved price; dropped unused, it is released.
pub struct Reservation {
    ledger: Arc<Ledger>,
    payer: Payer,
    grant: B256,
    amount: U256,
    one_request: bool,
    used: bool,
}

impl Ledger {
    /// What this router holds for `payer` (reserved and unsettled).
    pub fn held(&self, payer: Payer) -> U256 {
        self.inner
            .lock()
            .held
            .get(&payer)
            .copied()
            .unwrap_or_default()
    }

    /// Reserves a call's budget under `key`: `cap`, or what the client's free escrow
    /// or the grant's remaining limit allow if less (given the escrow balance and the
    /// grant's spending the chain shows), refused unless it covers `at_least` (one
    /// unit at the cheapest route's price).
    pub fn reserve(
        self: &Arc<Self>,
        key: &ApiKey,
        cap: U256,
        at_least: U256,
        (escrow, spent): (U256, U256),
        now: u64,
    ) -> Result<Reservation, CallError> {
        let mut i = self.inner.lock();
        let one_request = !key.grant.request.is_zero();
        if one_request && i.seen.contains_key(&key.id) {
            return Err(CallError::Replayed(
                "this signed request was already used".into(),
            ));
        }
        let payer = Payer::of(key);
        let held = i.held.get(&payer).copied().unwrap_or_default();
        let free = escrow.saturating_sub(held);
        let grant_held = i.grant_held.get(&key.spend).copied().unwrap_or_default();
        let left = key.limit.saturating_sub(spent + grant_held);
        let amount = cap.min(free).min(left);
        if amount < at_least {
            let unit = format!(
                "one unit at the cheapest node's price costs {at_least} wei with the router's fee"
            );
            return Err(CallError::Payment(if free <= cap.min(left) {
                match payer {
                    Payer::Account(a) => format!(
                        "the escrow of {a} has {free} wei free ({escrow} deposited, {held} held for calls not yet settled); {unit} (deposit with `emc escrow deposit`)"
                    ),
                    Payer::Socket(id) => format!(
                        "socket {id} has {free} wei of credits free ({escrow} left, {held} held for calls not yet settled); {unit} (add credits with `emc socket fund`)"
                    ),
                }
            } else if left <= cap {
                format!(
                    "the API key's limit of {} wei has {left} left; {unit}",
                    key.limit
                )
            } else {
                format!("x-emc-max-cost of {cap} wei is below what the call needs: {unit}")
            }));
        }
        if one_request {
            if i.seen.len() >= MAX_SEEN {
                i.seen.retain(|_, exp| *exp > now);
            }
            if i.seen.len() >= MAX_SEEN {
                return Err(CallError::Saturated(
                    "too many one-request grants in flight".into(),
                ));
            }
            i.seen.insert(key.id, key.grant.expires);
        }
        i.hold(payer, key.spend, amount);
        Ok(Reservation {
            ledger: self.clone(),
            payer,
            grant: key.spend,
            amount,
            one_request,
            used: false,
        })
    }

    /// Up to `max` receipts for the next settlement, oldest first.
    pub fn take_batch(&self, max: usize) -> Vec<Pending> {
        let mut i = self.inner.lock();
        let n = i.queue.len().min(max);
        i.queue.drain(..n).collect()
    }

    /// Puts a batch whose transaction did not make it back in front of the queue.
    pub fn requeue(&self, batch: Vec<Pending>) {
        let mut i = self.inner.lock();
        let rest = std::mem::take(&mut i.queue);
        i.queue = batch;
        i.queue.extend(rest);
    }

    /// A batch is in a block: the chain's escrow now shows it; drop the holds.
    pub fn settled(&self, batch: &[Pending]) {
        let mut i = self.inner.lock();
        for p in batch {
            i.release(p.payer, p.grant, p.total);
        }
    }
}

impl Reservation {
    /// The call's budget in wei: what it may cost at most.
    pub fn amount(&self) -> U256 {
        self.amount
    }

    /// The call was served: hold its real charge instead and queue its receipt.
    ///
    /// A call that costs nothing (a free app, or a refusal the node signed with no
    /// units) has nothing to settle: it is not queued, so the router spends no gas on
    /// it. A one-request grant used that way stays used.
    pub fn charge(mut self, receipt: Receipt, total: U256) {
        self.used = true;
        let mut i = self.ledger.inner.lock();
        i.release(self.payer, self.grant, self.amount);
        if total.is_zero() {
            return;
        }
        i.hold(self.payer, self.grant, total);
        i.queue.push(Pending {
            receipt,
            payer: self.payer,
            grant: self.grant,
            total,
        });
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        let mut i = self.ledger.inner.lock();
        i.release(self.payer, self.grant, self.amount);
        if self.one_request {
            // Not served: the client may send the same signed request again.
            i.seen.remove(&self.grant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emc_client::keys as auth;

    fn key(limit: u64, request: B256) -> ApiKey {
        let s = alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(5)).unwrap();
        let mut g = auth::grant(42, Address::ZERO, 1, 60, U256::from(limit));
        g.request = request;
        auth::parse(&auth::make(&s, g).unwrap()).unwrap()
    }

    fn receipt() -> Receipt {
        Receipt {
            grant: key(1, B256::ZERO).grant,
            grantSignature: Default::default(),
            app: "a".into(),
            requestHash: B256::ZERO,
            callId: B256::ZERO,
            resultHash: B256::ZERO,
            nodeId: B256::ZERO,
            unit: 0,
            units: 1,
            bytesOut: 0,
            wallUs: 0,
            maxUnits: 1,
            nodeSignature: Default::default(),
            maxCost: U256::from(1),
        }
    }

    #[test]
    fn reservations_hold_escrow_until_settled_and_failures_release_them() {
        let l = Arc::new(Ledger::default());
        let k = key(1_000, B256::ZERO);
        let u = |n: u64| U256::from(n);
        let r1 = l.reserve(&k, u(60), u(10), (u(100), u(0)), 0).unwrap();
        assert_eq!(r1.amount(), u(60), "the cap, when the escrow allows it");
        // 60 of 100 held: a second call gets what is left, 40, if that pays a unit.
        let r2 = l.reserve(&k, u(60), u(10), (u(100), u(0)), 0).unwrap();
        assert_eq!(r2.amount(), u(40));
        let e = l
            .reserve(&k, u(60), u(10), (u(100), u(0)), 0)
            .err()
            .unwrap();
        assert_eq!(e.status(), 402);
        assert!(e.to_string().contains("has 0 wei free"), "{e}");
        drop(r2); // failed: released whole
                  // The call costs 10: 90 free again, the receipt queued.
        r1.charge(receipt(), u(10));
        assert_eq!(l.held(Payer::of(&k)), u(10));
        // A call that cost nothing is not queued for settlement.
        let free = l.reserve(&k, u(60), u(10), (u(100), u(0)), 0).unwrap();
        free.charge(receipt(), u(0));
        let batch = l.take_batch(10);
        assert_eq!(batch.len(), 1);
        l.settled(&batch);
        assert_eq!(l.held(Payer::of(&k)), u(0));
        // The grant's limit counts what the chain has spent under it.
        let r = l.reserve(&k, u(60), u(10), (u(100), u(950)), 0).unwrap();
        assert_eq!(r.amount(), u(50));
        drop(r);
        let e = l
            .reserve(&k, u(60), u(10), (u(100), u(995)), 0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("has 5 left"), "{e}");
    }

    #[test]
    fn a_budget_that_pays_for_no_unit_is_refused_whatever_limits_it() {
        let l = Arc::new(Ledger::default());
        let k = key(1_000, B256::ZERO);
        let u = |n: u64| U256::from(n);
        // No escrow at all, and a cap of zero: refused, nothing held.
        let e = l.reserve(&k, u(0), u(10), (u(0), u(0)), 0).err().unwrap();
        assert!(e.to_string().contains("has 0 wei free"), "{e}");
        // Escrow enough, but a cap below one unit.
        let e = l.reserve(&k, u(1), u(10), (u(100), u(0)), 0).err().unwrap();
        assert!(e.to_string().contains("x-emc-max-cost of 1 wei"), "{e}");
        assert_eq!(l.held(Payer::of(&k)), u(0));
        // A free app needs no budget.
        let r = l.reserve(&k, u(0), u(0), (u(0), u(0)), 0).unwrap();
        assert_eq!(r.amount(), u(0));
    }

    #[test]
    fn a_sessions_one_request_grants_each_pay_once_from_one_shared_budget() {
        let l = Arc::new(Ledger::default());
        let u = |n: u64| U256::from(n);
        // Two per-request grants of one session key: two ids, one spending counter
        // capped at the session's 15 (what `SignIns::resolve` makes of them).
        let session = |request: u8| {
            let mut k = key(1_000, B256::repeat_byte(request));
            k.spend = B256::repeat_byte(0x5e);
            k.limit = u(15);
            k
        };
        let (a, b) = (session(1), session(2));
        let ra = l.reserve(&a, u(10), u(1), (u(100), u(0)), 0).unwrap();
        assert_eq!(
            l.reserve(&a, u(10), u(1), (u(100), u(0)), 0)
                .err()
                .unwrap()
                .status(),
            409
        );
        let rb = l.reserve(&b, u(10), u(1), (u(100), u(0)), 0).unwrap();
        assert_eq!(
            rb.amount(),
            u(5),
            "the session's 15 less the 10 held for the first"
        );
        drop((ra, rb));
    }

    #[test]
    fn a_one_request_grant_is_used_once_unless_its_call_failed() {
        let l = Arc::new(Ledger::default());
        let k = key(100, B256::repeat_byte(1));
        let u = |n: u64| U256::from(n);
        let reserve = || l.reserve(&k, u(10), u(1), (u(100), u(0)), 0);
        let r = reserve().unwrap();
        assert_eq!(reserve().err().unwrap().status(), 409);
        drop(r);
        let r = reserve().unwrap();
        r.charge(receipt(), u(5));
        assert_eq!(reserve().err().unwrap().status(), 409);
    }
}

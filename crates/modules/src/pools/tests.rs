//! The Pools module over the in-memory host, with the Registry, Tasks and Staking
//! modules beside it: membership by its rules, and a job's pay split to the wei by
//! signed metering, E and the operator's commission, each bad input refused.

use super::jobs::{accounting_message, split, usage_message};
use super::members::join_message;
use super::*;
use crate::staking::Role;
use crate::tasks::{grant_message, ITasks};
use crate::testing::MemHost;
use crate::TASKS_ADDRESS;
use alloy_primitives::{B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolEvent;
use proptest::prelude::*;

const GAS: u64 = 50_000_000;
const T0: u64 = 1_800_000_000;
/// Wei per CPU-second and per GPU-second.
const CPU_PRICE: u64 = 2_000;
const GPU_PRICE: u64 = 30_000;
const BPS: u16 = 1_000;

struct World {
    h: MemHost,
    operator: Address,
    router: Address,
    client: PrivateKeySigner,
    /// Three registered nodes: (seed, owner, id).
    nodes: Vec<(u8, Address, B256)>,
}

fn addr(i: u8) -> Address {
    Address::repeat_byte(i)
}

fn key(seed: u8) -> ed25519_consensus::SigningKey {
    ed25519_consensus::SigningKey::from([seed; 32])
}

fn world() -> World {
    let mut h = MemHost::new(POOLS_ADDRESS);
    h.timestamp = T0;
    let nodes: Vec<_> = (0..3u8)
        .map(|i| {
            let owner = addr(0xe0 + i);
            (20 + i, owner, h.register_node(20 + i, owner, &["ray"]))
        })
        .collect();
    let (operator, router) = (addr(0x0a), addr(0x0b));
    h.stake(operator, Role::Compute, 1_000);
    h.stake(router, Role::Router, 1_000);
    let client = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("key");
    h.balances
        .insert(client.address(), U256::from(10u64.pow(12)));
    let mut w = World {
        h,
        operator,
        router,
        client,
        nodes,
    };
    let deposit = ITasks::depositCall {}.abi_encode();
    let who = w.client.address();
    w.h.call(TASKS_ADDRESS, who, U256::from(10u64.pow(9)), &deposit, GAS)
        .expect("deposits");
    w
}

impl World {
    fn send(&mut self, from: Address, call: impl SolCall) -> Result<Bytes, String> {
        self.h
            .call(POOLS_ADDRESS, from, U256::ZERO, &call.abi_encode(), GAS)
    }

    fn create(&mut self, from: Address) -> Result<u64, String> {
        let c = IPools::createPoolCall {
            name: "three cpus".into(),
            commissionBps: BPS,
            cpuPrice: U256::from(CPU_PRICE),
            gpuPrice: U256::from(GPU_PRICE),
            apps: vec!["train".into(), "batch-infer".into()],
            frameworks: vec!["numpy".into(), "torch".into()],
        };
        let out = self.send(from, c)?;
        Ok(IPools::createPoolCall::abi_decode_returns(&out).expect("an id"))
    }

    fn join_call(&self, pool: u64, i: usize, cpus: u32) -> IPools::joinCall {
        let (seed, _, id) = self.nodes[i];
        let msg = join_message(42, pool, id, cpus, 0, 2_048);
        IPools::joinCall {
            poolId: pool,
            nodeId: id,
            cpus,
            gpus: 0,
            memoryMb: 2_048,
            nodeSignature: key(seed).sign(&msg).to_bytes().to_vec().into(),
        }
    }

    fn join(&mut self, pool: u64, i: usize) -> Result<Bytes, String> {
        let c = self.join_call(pool, i, 1);
        let owner = self.nodes[i].1;
        self.send(owner, c)
    }

    /// A pool of all three nodes; node 0 is its head.
    fn pool(&mut self) -> u64 {
        let p = self.create(self.operator).expect("created");
        for i in 0..3 {
            self.join(p, i).expect("joins");
        }
        p
    }

    fn open(&mut self, pool: u64, job: u8, max_cost: u64) -> Result<Bytes, String> {
        let c = IPools::openJobCall {
            poolId: pool,
            jobId: B256::repeat_byte(job),
            maxCost: U256::from(max_cost),
            deadline: self.h.timestamp + 3_600,
        };
        self.send(self.router, c)
    }

    fn members(&mut self, pool: u64) -> Vec<IPools::Member> {
        let out = self
            .send(addr(1), IPools::membersCall { poolId: pool })
            .expect("members");
        IPools::membersCall::abi_decode_returns(&out).expect("decodes")
    }

    fn usage(&self, i: usize, cpu_ms: u64) -> IPools::Usage {
        IPools::Usage {
            nodeId: self.nodes[i].2,
            cpuMs: cpu_ms,
            gpuMs: 0,
        }
    }

    /// A receipt for `job` of `pool`: reports `(member, cpuMs)`, Ray's accounting
    /// `(member, cpuMs)` signed by node `head`.
    fn receipt(
        &self,
        pool: u64,
        job: u8,
        reports: &[(usize, u64)],
        ray: &[(usize, u64)],
        head: usize,
    ) -> IPools::JobReceipt {
        let job = B256::repeat_byte(job);
        let grant = IPools::Grant {
            chainId: 42,
            router: Address::ZERO,
            nonce: 1,
            expires: self.h.timestamp + 600,
            limit: U256::from(10u64.pow(9)),
            request: B256::ZERO,
        };
        let g = ITasks::Grant::from(&grant);
        let sig = self
            .client
            .sign_message_sync(grant_message(&g).as_bytes())
            .expect("signs");
        let accounted: Vec<_> = ray.iter().map(|(i, ms)| self.usage(*i, *ms)).collect();
        let head_sig = key(self.nodes[head].0).sign(&accounting_message(42, pool, job, &accounted));
        IPools::JobReceipt {
            grant,
            grantSignature: sig.as_bytes().to_vec().into(),
            socket: U256::ZERO,
            poolId: pool,
            jobId: job,
            requestHash: B256::repeat_byte(0xaa),
            reports: reports
                .iter()
                .map(|(i, ms)| {
                    let u = self.usage(*i, *ms);
                    let s = key(self.nodes[*i].0).sign(&usage_message(42, pool, job, &u));
                    IPools::Report {
                        usage: u,
                        signature: s.to_bytes().to_vec().into(),
                    }
                })
                .collect(),
            accounted,
            headSignature: head_sig.to_bytes().to_vec().into(),
        }
    }

    fn settle(&mut self, r: IPools::JobReceipt) -> Result<Bytes, String> {
        self.h.logs.clear();
        self.send(self.router, IPools::settleJobCall { receipt: r })
    }

    fn escrow(&mut self) -> U256 {
        let c = ITasks::escrowOfCall {
            account: self.client.address(),
        };
        let out = self
            .h
            .call(TASKS_ADDRESS, addr(1), U256::ZERO, &c.abi_encode(), GAS)
            .expect("escrow");
        ITasks::escrowOfCall::abi_decode_returns(&out)
            .expect("decodes")
            .balance
    }

    fn events<E: SolEvent>(&self) -> Vec<E> {
        self.h
            .logs
            .iter()
            .filter_map(|(t, d)| E::decode_raw_log(t.clone(), d).ok())
            .collect()
    }
}

#[test]
fn a_pool_is_made_joined_headed_and_left_by_its_rules() {
    let mut w = world();
    let e = w.create(addr(0x55)).expect_err("no stake");
    assert!(e.contains("needs router or compute stake"), "{e}");
    let p = w.create(w.operator).expect("created");
    assert_eq!(p, 1);
    // Joining: only the owner, only with the node key's signature over these terms.
    let c = w.join_call(p, 0, 1);
    let e = w.send(w.nodes[1].1, c.clone()).expect_err("not the owner");
    assert!(e.contains("only node"), "{e}");
    let mut forged = c.clone();
    forged.cpus = 64;
    let e = w
        .send(w.nodes[0].1, forged)
        .expect_err("terms changed after signing");
    assert!(e.contains("did not sign this join request"), "{e}");
    let zero = w.join_call(p, 0, 0);
    let e = w.send(w.nodes[0].1, zero).expect_err("no cpu");
    assert!(e.contains("at least one CPU"), "{e}");
    for i in 0..3 {
        w.join(p, i).expect("joins");
    }
    let e = w.join(p, 0).expect_err("twice");
    assert!(e.contains("already in pool 1"), "{e}");
    let info = |w: &mut World| {
        let out = w
            .send(addr(1), IPools::poolCall { poolId: p })
            .expect("pool");
        IPools::poolCall::abi_decode_returns(&out).expect("decodes")
    };
    let pool = info(&mut w);
    assert_eq!(
        (pool.head, pool.members),
        (w.nodes[0].2, 3),
        "the first member heads"
    );
    assert_eq!(
        pool.frameworks,
        vec!["numpy".to_string(), "torch".to_string()]
    );
    let e = w
        .send(
            w.nodes[1].1,
            IPools::setHeadCall {
                poolId: p,
                nodeId: w.nodes[1].2,
            },
        )
        .expect_err("not the operator");
    assert!(e.contains("operator"), "{e}");
    w.send(
        w.operator,
        IPools::setHeadCall {
            poolId: p,
            nodeId: w.nodes[1].2,
        },
    )
    .expect("the operator names the head");
    // A member with no job leaves at once; the head's leaving passes the head on.
    w.send(
        w.nodes[1].1,
        IPools::leaveCall {
            nodeId: w.nodes[1].2,
        },
    )
    .expect("leaves");
    let pool = info(&mut w);
    assert_eq!(pool.members, 2);
    assert_ne!(pool.head, w.nodes[1].2);
    assert!([w.nodes[0].2, w.nodes[2].2].contains(&pool.head));
    let ids: Vec<B256> = w.members(p).iter().map(|m| m.nodeId).collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&w.nodes[1].2));
    let out = w
        .send(
            addr(1),
            IPools::poolOfCall {
                nodeId: w.nodes[1].2,
            },
        )
        .expect("view");
    assert_eq!(
        IPools::poolOfCall::abi_decode_returns(&out).expect("u64"),
        0
    );
}

#[test]
fn a_member_with_a_running_job_leaves_when_it_ends() {
    let mut w = world();
    let p = w.pool();
    w.open(p, 7, 10u64.pow(8)).expect("opens");
    let me = w.nodes[2];
    w.send(me.1, IPools::leaveCall { nodeId: me.2 })
        .expect("asks to leave");
    let m = w.members(p);
    let leaving = m.iter().find(|m| m.nodeId == me.2).expect("still a member");
    assert!(leaving.leaving);
    assert_eq!(leaving.running, 1);
    // A job opened now runs without it.
    w.open(p, 8, 10u64.pow(8)).expect("opens");
    let out = w
        .send(
            addr(1),
            IPools::jobCall {
                poolId: p,
                jobId: B256::repeat_byte(8),
            },
        )
        .expect("job");
    let job = IPools::jobCall::abi_decode_returns(&out).expect("decodes");
    assert_eq!(job.members.len(), 2);
    let r = w.receipt(
        p,
        7,
        &[(0, 1_000), (2, 1_000)],
        &[(0, 1_000), (2, 1_000)],
        0,
    );
    w.settle(r).expect("settles");
    assert!(
        w.events::<IPools::Left>().iter().any(|l| l.nodeId == me.2),
        "left with its job"
    );
    assert_eq!(w.members(p).len(), 2);
}

#[test]
fn a_job_pays_the_smaller_of_each_report_and_rays_accounting_by_e_to_the_wei() {
    let mut w = world();
    let p = w.pool();
    let ids: Vec<B256> = w.nodes.iter().map(|n| n.2).collect();
    for (id, e) in ids.iter().zip([100u64, 300, 200]) {
        w.h.set_score(*id, 1, e);
    }
    w.open(p, 7, 10u64.pow(8)).expect("opens");
    let owners: Vec<Address> = w.nodes.iter().map(|n| n.1).collect();
    let before: Vec<U256> = owners.iter().map(|o| w.h.balance(*o)).collect();
    let (op0, router0, escrow0, supply0) = (
        w.h.balance(w.operator),
        w.h.balance(w.router),
        w.escrow(),
        w.h.supply(),
    );
    // Member 0 reports what Ray accounted; member 1 was killed mid-job and reports
    // what it metered before it died; member 2 reports more than Ray accounted.
    let r = w.receipt(
        p,
        7,
        &[(0, 12_345), (1, 4_000), (2, 9_001)],
        &[(0, 12_345), (1, 6_500), (2, 9_000)],
        0,
    );
    w.settle(r.clone()).expect("settles");
    let refused = w.events::<IPools::MeteringRefused>();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].nodeId, ids[2]);
    assert!(
        refused[0].reason.contains("more than the 9000"),
        "{}",
        refused[0].reason
    );
    // The pay, computed here from the rule: cost = cpuMs · price / 1000; 10% to the
    // operator; the rest by cost · E; the dust to the operator.
    let c0 = U256::from(12_345 * CPU_PRICE / 1_000);
    let c1 = U256::from(4_000 * CPU_PRICE / 1_000);
    let total = c0 + c1;
    let fee = total * U256::from(500) / U256::from(10_000);
    let commission = total / U256::from(10);
    let rest = total - commission;
    let (w0, w1) = (c0 * U256::from(100), c1 * U256::from(300));
    let (a0, a1) = (rest * w0 / (w0 + w1), rest * w1 / (w0 + w1));
    let dust = rest - a0 - a1;
    assert_eq!(w.h.balance(owners[0]) - before[0], a0);
    assert_eq!(w.h.balance(owners[1]) - before[1], a1);
    assert_eq!(
        w.h.balance(owners[2]),
        before[2],
        "the over-reporter is paid nothing"
    );
    assert_eq!(w.h.balance(w.operator) - op0, commission + dust);
    assert_eq!(w.h.balance(w.router) - router0, fee);
    assert_eq!(
        escrow0 - w.escrow(),
        total + fee,
        "the client paid exactly that"
    );
    assert_eq!(
        w.h.balance(POOLS_ADDRESS),
        U256::ZERO,
        "the module keeps nothing"
    );
    assert_eq!(w.h.supply(), supply0);
    let paid = w.events::<IPools::MemberPaid>();
    assert_eq!(
        paid.iter().map(|p| p.amount).collect::<Vec<_>>(),
        vec![a0, a1]
    );
    let settled = w.events::<IPools::JobSettled>();
    assert_eq!(settled[0].account, w.client.address());
    assert_eq!((settled[0].cost, settled[0].routerFee), (total, fee));
    // Once only.
    let e = w.settle(r).expect_err("twice");
    assert!(e.contains("no running job"), "{e}");
    assert!(w.members(p).iter().all(|m| m.running == 0));
}

#[test]
fn a_socket_of_the_pool_pays_its_jobs_from_its_credits_signed_by_its_holder() {
    use crate::sockets::{settle::socket_grant_message, ISockets};
    use crate::SOCKETS_ADDRESS;
    let mut w = world();
    let p = w.pool();
    let provider = super::provider(p);
    assert_eq!(super::pool_of_provider(provider), Some(p));
    assert_eq!(super::pool_of_provider(w.nodes[0].2), None);
    let client = w.client.address();
    let mint = |app: &str| ISockets::mintCall {
        to: client,
        node: provider,
        app: app.into(),
        appHash: B256::ZERO,
        unit: 3,
        pricePerUnit: U256::from(8),
        validFor: 86_400,
        renewalPricePerSecond: U256::ZERO,
    };
    let sockets = |w: &mut World, from: Address, value: u64, data: Vec<u8>| {
        w.h.call(SOCKETS_ADDRESS, from, U256::from(value), &data, GAS)
    };
    // Only the pool's operator sells its sockets, and only for its jobs.
    let e = sockets(&mut w, addr(9), 0, mint("jobs").abi_encode()).expect_err("stranger");
    assert!(e.contains("operated by"), "{e}");
    let operator = w.operator;
    let e = sockets(&mut w, operator, 0, mint("chat").abi_encode()).expect_err("app");
    assert!(e.contains("\"jobs\""), "{e}");
    let out = sockets(&mut w, operator, 0, mint("jobs").abi_encode()).expect("mints");
    let id = ISockets::mintCall::abi_decode_returns(&out).expect("id");
    let fund = ISockets::fundCall {
        tokenId: id,
        units: 1_000,
    };
    sockets(&mut w, client, 8_000, fund.abi_encode()).expect("funds");

    w.open(p, 8, 10u64.pow(8)).expect("opens");
    let socket_receipt = |w: &World, signer: &PrivateKeySigner| {
        let mut r = w.receipt(
            p,
            8,
            &[(0, 1_000), (1, 2_000)],
            &[(0, 1_000), (1, 2_000)],
            0,
        );
        let g = ITasks::Grant::from(&r.grant);
        let sig = signer
            .sign_message_sync(socket_grant_message(&g, id).as_bytes())
            .expect("signs");
        r.grantSignature = sig.as_bytes().to_vec().into();
        r.socket = id;
        r
    };
    // A key its holder did not sign pays nothing.
    let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x22)).expect("key");
    let e = w
        .settle(socket_receipt(&w, &stranger))
        .expect_err("not the holder");
    assert!(e.contains("does not hold socket"), "{e}");

    let op0 = w.h.balance(w.operator);
    let escrow0 = w.escrow();
    w.settle(socket_receipt(&w, &w.client)).expect("settles");
    // Costs 2,000 and 4,000 wei, the router's fee 300: 6,300 wei, 788 credits of 8
    // wei (6,304), the 4 wei of rounding to the operator.
    let view = sockets(
        &mut w,
        addr(1),
        0,
        ISockets::socketCall { tokenId: id }.abi_encode(),
    )
    .expect("socket");
    let s = ISockets::socketCall::abi_decode_returns(&view).expect("decodes");
    assert_eq!(s.credits, 1_000 - 788);
    assert_eq!(w.escrow(), escrow0, "the escrow is not touched");
    let settled = w.events::<IPools::JobSettled>();
    assert_eq!(settled[0].account, client);
    assert_eq!(settled[0].cost, U256::from(6_000));
    assert_eq!(settled[0].commission, U256::from(600 + 4));
    assert_eq!(w.h.balance(w.operator) - op0, U256::from(604));
    let paid: U256 = w
        .events::<IPools::MemberPaid>()
        .iter()
        .map(|p| p.amount)
        .sum();
    assert_eq!(paid, U256::from(5_400));
    assert_eq!(
        w.h.balance(POOLS_ADDRESS),
        U256::ZERO,
        "the module keeps nothing"
    );
}

#[test]
fn bad_settlements_are_refused_with_reasons_and_move_nothing() {
    let mut w = world();
    let p = w.pool();
    let e = w.send(
        addr(0x66),
        IPools::openJobCall {
            poolId: p,
            jobId: B256::repeat_byte(7),
            maxCost: U256::from(1),
            deadline: T0 + 60,
        },
    );
    assert!(e.expect_err("no stake").contains("only a staked router"));
    w.open(p, 7, 10u64.pow(8)).expect("opens");
    assert!(w
        .open(p, 7, 10u64.pow(8))
        .expect_err("twice")
        .contains("already has job"));
    let good = [(0, 1_000), (1, 1_000)];
    let supply = w.h.supply();
    let escrow = w.escrow();
    // Signed by a member that is not the job's head.
    let e = w
        .settle(w.receipt(p, 7, &good, &good, 1))
        .expect_err("not the head");
    assert!(e.contains("head member did not sign"), "{e}");
    // Another router.
    let r = w.receipt(p, 7, &good, &good, 0);
    let e = w.h.call(
        POOLS_ADDRESS,
        addr(0x66),
        U256::ZERO,
        &IPools::settleJobCall { receipt: r.clone() }.abi_encode(),
        GAS,
    );
    assert!(e
        .expect_err("stranger")
        .contains("only the router that opened"));
    // A report whose signature is another job's.
    let mut swapped = r.clone();
    swapped.reports[1].signature = w.receipt(p, 8, &good, &good, 0).reports[1]
        .signature
        .clone();
    w.settle(swapped).expect("settles the rest");
    let refused = w.events::<IPools::MeteringRefused>();
    assert!(
        refused[0].reason.contains("did not sign this report"),
        "{}",
        refused[0].reason
    );
    assert_eq!(w.h.supply(), supply);
    assert!(w.escrow() < escrow);
    // Past its deadline, anyone may expire a job; nobody is paid.
    w.open(p, 9, 10u64.pow(8)).expect("opens");
    let expire = IPools::expireJobCall {
        poolId: p,
        jobId: B256::repeat_byte(9),
    };
    assert!(w
        .send(addr(0x66), expire.clone())
        .expect_err("early")
        .contains("may settle until"));
    w.h.timestamp += 3_601;
    w.send(addr(0x66), expire).expect("expires");
    let e = w
        .settle(w.receipt(p, 9, &good, &good, 0))
        .expect_err("expired");
    assert!(e.contains("no running job"), "{e}");
}

#[test]
fn a_job_that_ran_past_its_budget_pays_its_budget() {
    let mut w = world();
    let p = w.pool();
    let budget = 10_500u64;
    w.open(p, 7, budget).expect("opens");
    let escrow = w.escrow();
    // 20,000 wei of work at the pool's prices, on a budget for 10,000 plus the fee.
    let r = w.receipt(
        p,
        7,
        &[(0, 5_000), (1, 5_000)],
        &[(0, 5_000), (1, 5_000)],
        0,
    );
    w.settle(r).expect("settles");
    assert_eq!(escrow - w.escrow(), U256::from(budget));
    let s = &w.events::<IPools::JobSettled>()[0];
    assert_eq!((s.cost, s.routerFee), (U256::from(10_000), U256::from(500)));
}

proptest! {
    /// The commission and the members' amounts sum to the total exactly; the
    /// commission is at least its share; with E, more cost · E never pays less.
    #[test]
    fn a_split_adds_up_and_follows_cost_times_e(
        members in proptest::collection::vec((0u64..10u64.pow(12), 0u64..1_000), 1..32),
        bps in 0u16..=5_000,
    ) {
        let shares: Vec<(U256, u64)> = members.iter().map(|(c, e)| (U256::from(*c), *e)).collect();
        let total = shares.iter().fold(U256::ZERO, |s, (c, _)| s + c);
        let (commission, amounts) = split(&shares, bps);
        let sum = amounts.iter().fold(commission, |s, a| s + a);
        prop_assert_eq!(sum, total);
        prop_assert!(commission >= total * U256::from(bps) / U256::from(10_000));
        let any_e = members.iter().any(|(c, e)| *c > 0 && *e > 0);
        for (i, j) in (0..members.len()).flat_map(|i| (0..members.len()).map(move |j| (i, j))) {
            let w = |k: usize| if any_e { U256::from(members[k].0) * U256::from(members[k].1) } else { U256::from(members[k].0) };
            if w(i) > w(j) {
                prop_assert!(amounts[i] >= amounts[j]);
            }
        }
    }
}

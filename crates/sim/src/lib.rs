//! A deterministic simulator for EMC's IBFT core.
//!
//! One seeded event loop drives N [`emc_consensus::Core`]s in virtual time. Links have
//! latency, jitter and loss; the network can be partitioned and healed; nodes crash
//! (losing everything but their WAL and committed chain) and restart; byzantine nodes
//! run an honest core whose outgoing messages a [`Behavior`] rewrites and re-signs with
//! the node's own key. A node that falls behind catches up the way block sync will:
//! a peer that sees it send for an old height hands it that height's final block, which
//! it accepts only after checking the commit certificate.
//!
//! With [`Staking`], the validator set changes at epoch boundaries as a pure function
//! of the committed chain, as the staking module makes it: proposers put planned
//! joins and leaves, and equivocation evidence their core reported, into blocks; the
//! set of epoch E+1 applies what epochs up to E committed (evidence is checked against
//! the offender's set and signatures first, and removes it). Every node derives its
//! own sets from its own chain, and safety still holds across set changes.
//!
//! Safety (no two different final blocks at one height) is checked at every commit,
//! at every node, against every other. The run's trace hash covers every event, so
//! the same seed gives the same hash; a failing run reports its seed.

mod behavior;

pub use behavior::Behavior;

use alloy_primitives::{Bytes, B256};
use borsh::{BorshDeserialize, BorshSerialize};
use emc_consensus::{
    crypto::{insecure::Registry, Crypto, Ed25519Crypto},
    verify_certificate, Config, Core, Finalized, Height, Input, Message, Output, Round, Validator,
    ValidatorIndex, ValidatorSet, WalState,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

pub const CHAIN_ID: u64 = 7;
/// First retransmission timeout of the simulated transport; it doubles per retry.
pub const RETRANSMIT_MS: u64 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoKind {
    /// The fast keyed-hash stand-in; for sweeps.
    Mac,
    /// Real ed25519; for benchmarks and a few runs.
    Ed25519,
}

/// A scheduled fault.
#[derive(Clone, Debug)]
pub enum Fault {
    Crash {
        node: usize,
        at_ms: u64,
    },
    Restart {
        node: usize,
        at_ms: u64,
    },
    /// Nodes in different groups cannot reach each other.
    Partition {
        groups: Vec<Vec<usize>>,
        at_ms: u64,
    },
    Heal {
        at_ms: u64,
    },
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub n: usize,
    /// Voting power per node; equal when `None`.
    pub powers: Option<Vec<u64>>,
    pub seed: u64,
    /// Stop once every live honest node has committed this many heights.
    pub heights: u64,
    /// Give up (and report) at this virtual time.
    pub max_time_ms: u64,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Probability that any one transmission is lost (and retransmitted later).
    pub loss: f64,
    pub timeout_base_ms: u64,
    /// Time the chain takes to build or validate a block.
    pub app_delay_ms: u64,
    pub byzantine: Vec<(usize, Behavior)>,
    pub faults: Vec<Fault>,
    pub crypto: CryptoKind,
    /// Epoch-based validator sets; `None`: every node, for ever.
    pub staking: Option<Staking>,
}

/// Validator sets that change at epoch boundaries with the committed chain.
#[derive(Clone, Debug)]
pub struct Staking {
    pub epoch_blocks: u64,
    /// The first epoch's members (node ids), powers from [`SimConfig::powers`].
    pub genesis: Vec<usize>,
    /// Operations a proposer puts into the first block it builds at or above the
    /// height, unless its chain already has them.
    pub ops: Vec<(u64, StakeOp)>,
    /// Proposers include the equivocation evidence their core reported.
    pub submit_evidence: bool,
}

/// A staking transaction as the simulated chain carries it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum StakeOp {
    Join {
        node: u32,
        power: u64,
    },
    Leave {
        node: u32,
    },
    /// Two signatures of one kind by one validator at one (height, round) over
    /// different digests.
    Evidence(Box<emc_consensus::Evidence>),
}

impl SimConfig {
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            powers: None,
            seed,
            heights: 5,
            max_time_ms: 600_000,
            latency_ms: 20,
            jitter_ms: 20,
            loss: 0.0,
            timeout_base_ms: 500,
            app_delay_ms: 5,
            byzantine: Vec::new(),
            faults: Vec::new(),
            crypto: CryptoKind::Mac,
            staking: None,
        }
    }

    fn is_byzantine(&self, i: usize) -> bool {
        self.byzantine.iter().any(|(b, _)| *b == i)
    }
}

/// Two different blocks final at one height: the one thing that must never happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyViolation {
    pub seed: u64,
    pub height: u64,
    pub first: B256,
    pub second: B256,
    pub node: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub trace_hash: [u8; 32],
    /// Committed height of every node at the end.
    pub heights: Vec<u64>,
    pub time_ms: u64,
    pub messages: u64,
    pub equivocations_reported: usize,
    /// CPU time spent inside `Core::handle`, per node.
    pub cpu: Vec<Duration>,
    /// Virtual time from a height's first proposal to each honest node's commit, ms.
    pub finality_ms: Vec<u64>,
    pub max_round: u32,
    /// Virtual time of the first commit of each height, ms.
    pub commit_times: BTreeMap<u64, u64>,
    /// For each final height: the set that sealed it (node ids), its proposer, and the
    /// members whose seals its first certificate holds.
    pub sealed: BTreeMap<u64, Sealed>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub set: Vec<usize>,
    pub proposer: usize,
    pub signers: Vec<usize>,
}

impl Outcome {
    /// The least height any live honest node reached.
    pub fn min_honest_height(&self, cfg: &SimConfig, down: &[usize]) -> u64 {
        (0..cfg.n)
            .filter(|i| !cfg.is_byzantine(*i) && !down.contains(i))
            .map(|i| self.heights[i])
            .min()
            .unwrap_or(0)
    }
}

/// The block format of the simulated chain: who proposed it, and filler.
#[derive(BorshSerialize, BorshDeserialize)]
pub(crate) struct SimBlock {
    pub height: u64,
    /// The proposer's node id.
    pub proposer: u32,
    pub valid: bool,
    pub payload: Vec<u8>,
    pub ops: Vec<StakeOp>,
}

pub(crate) fn digest_of(block: &[u8]) -> B256 {
    B256::from(<[u8; 32]>::from(Sha256::digest(block)))
}

fn block_is_valid(block: &[u8], digest: B256, height: Height) -> bool {
    digest_of(block) == digest
        && SimBlock::try_from_slice(block).is_ok_and(|b| b.valid && b.height == height.0)
}

/// The node id that proposed a block.
fn proposer_of(block: &[u8]) -> Option<usize> {
    SimBlock::try_from_slice(block)
        .ok()
        .map(|b| b.proposer as usize)
}

fn ops_of(block: &[u8]) -> Vec<StakeOp> {
    SimBlock::try_from_slice(block)
        .map(|b| b.ops)
        .unwrap_or_default()
}

enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Arc<Message>,
    },
    Sync {
        to: usize,
        fin: Arc<Finalized>,
    },
    Timer {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
    },
    Built {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
    },
    Validate {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
        digest: B256,
        block: Bytes,
    },
    Fault(Fault),
}

struct Node {
    core: Option<Core>,
    crypto: Arc<dyn CryptoClone>,
    wal: Option<WalState>,
    chain: Vec<Finalized>,
    /// Node id of the last block's proposer.
    prev_proposer: Option<usize>,
    /// Evidence this node's core reported, for its next proposals.
    evidence: Vec<emc_consensus::Evidence>,
    incarnation: u64,
    seen: Vec<Arc<Message>>,
    synced_to: BTreeMap<(usize, u64), u64>,
}

/// A crypto the simulator can hand to a fresh core after a restart.
pub(crate) trait CryptoClone: Crypto + Sync {
    fn boxed(&self) -> Box<dyn Crypto>;
}
impl CryptoClone for emc_consensus::crypto::insecure::MacCrypto {
    fn boxed(&self) -> Box<dyn Crypto> {
        Box::new(self.clone())
    }
}
struct Ed(Ed25519Crypto, [u8; 32]);
impl Crypto for Ed {
    fn public_key(&self) -> emc_consensus::ValidatorKey {
        self.0.public_key()
    }
    fn sign(&self, p: &[u8]) -> emc_consensus::Sig {
        self.0.sign(p)
    }
    fn verify(&self, k: &emc_consensus::ValidatorKey, p: &[u8], s: &emc_consensus::Sig) -> bool {
        self.0.verify(k, p, s)
    }
    fn verify_batch(
        &self,
        items: &[(emc_consensus::ValidatorKey, Vec<u8>, emc_consensus::Sig)],
    ) -> bool {
        self.0.verify_batch(items)
    }
}
impl CryptoClone for Ed {
    fn boxed(&self) -> Box<dyn Crypto> {
        Box::new(Ed(Ed25519Crypto::from_seed(self.1), self.1))
    }
}

pub struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    nodes: Vec<Node>,
    keys: Vec<emc_consensus::ValidatorKey>,
    powers: Vec<u64>,
    partition: Option<Vec<usize>>,
    final_digest: BTreeMap<u64, B256>,
    first_proposal: BTreeMap<u64, u64>,
    trace: Sha256,
    messages: u64,
    equivocations: usize,
    cpu: Vec<Duration>,
    finality: Vec<u64>,
    max_round: u32,
    commit_times: BTreeMap<u64, u64>,
    sealed: BTreeMap<u64, Sealed>,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let cryptos: Vec<Arc<dyn CryptoClone>> = match cfg.crypto {
            CryptoKind::Mac => {
                let (_, c) = Registry::new(cfg.seed, cfg.n);
                c.into_iter()
                    .map(|c| Arc::new(c) as Arc<dyn CryptoClone>)
                    .collect()
            }
            CryptoKind::Ed25519 => (0..cfg.n)
                .map(|i| {
                    let seed: [u8; 32] =
                        Sha256::digest(format!("emc-sim-ed25519-{}-{i}", cfg.seed)).into();
                    Arc::new(Ed(Ed25519Crypto::from_seed(seed), seed)) as Arc<dyn CryptoClone>
                })
                .collect(),
        };
        let powers = cfg.powers.clone().unwrap_or_else(|| vec![1; cfg.n]);
        let keys = cryptos.iter().map(|c| c.public_key()).collect();
        let nodes = cryptos
            .into_iter()
            .map(|crypto| Node {
                core: None,
                crypto,
                wal: None,
                chain: Vec::new(),
                prev_proposer: None,
                evidence: Vec::new(),
                incarnation: 0,
                seen: Vec::new(),
                synced_to: BTreeMap::new(),
            })
            .collect();
        let mut sim = Sim {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            nodes,
            keys,
            powers,
            partition: None,
            final_digest: BTreeMap::new(),
            first_proposal: BTreeMap::new(),
            trace: Sha256::new(),
            messages: 0,
            equivocations: 0,
            cpu: vec![Duration::ZERO; cfg.n],
            finality: Vec::new(),
            max_round: 0,
            commit_times: BTreeMap::new(),
            sealed: BTreeMap::new(),
            cfg,
        };
        for f in sim.cfg.faults.clone() {
            let at = match &f {
                Fault::Crash { at_ms, .. }
                | Fault::Restart { at_ms, .. }
                | Fault::Partition { at_ms, .. }
                | Fault::Heal { at_ms } => *at_ms,
            };
            sim.schedule(at, Event::Fault(f));
        }
        sim
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn core_config(&self) -> Config {
        Config {
            chain_id: CHAIN_ID,
            timeout_base_ms: self.cfg.timeout_base_ms,
            ..Config::default()
        }
    }

    /// Runs to the configured height or time; `Err` on a safety violation.
    pub fn run(mut self) -> Result<Outcome, SafetyViolation> {
        for i in 0..self.cfg.n {
            self.boot(i)?;
        }
        let down = |sim: &Sim| -> Vec<usize> {
            (0..sim.cfg.n)
                .filter(|i| sim.nodes[*i].core.is_none())
                .collect()
        };
        while let Some(Reverse((at, seq))) = self.queue.pop() {
            if at > self.cfg.max_time_ms {
                break;
            }
            self.now = at;
            let Some(ev) = self.events.remove(&seq) else {
                continue;
            };
            self.step(ev)?;
            let d = down(&self);
            let done = (0..self.cfg.n)
                .filter(|i| !self.cfg.is_byzantine(*i) && !d.contains(i))
                .all(|i| self.nodes[i].chain.len() as u64 >= self.cfg.heights);
            let pending_faults = self.events.values().any(|e| matches!(e, Event::Fault(_)));
            if done && !pending_faults {
                break;
            }
        }
        Ok(Outcome {
            seed: self.cfg.seed,
            trace_hash: self.trace.finalize().into(),
            heights: self.nodes.iter().map(|n| n.chain.len() as u64).collect(),
            time_ms: self.now,
            messages: self.messages,
            equivocations_reported: self.equivocations,
            cpu: self.cpu,
            finality_ms: self.finality,
            max_round: self.max_round,
            commit_times: self.commit_times,
            sealed: self.sealed,
        })
    }

    fn boot(&mut self, i: usize) -> Result<(), SafetyViolation> {
        let cfg = self.core_config();
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.core = Some(Core::new(cfg, node.crypto.boxed()));
        let height = Height(node.chain.len() as u64 + 1);
        let restore = node.wal.clone();
        let (set, prev_proposer) = self.start_set(i, height.0);
        let input = Input::Start {
            height,
            set,
            prev_proposer,
            restore,
        };
        self.feed(i, input)
    }

    fn step(&mut self, ev: Event) -> Result<(), SafetyViolation> {
        match ev {
            Event::Deliver { from, to, msg } => {
                self.trace.update([0u8]);
                self.trace.update(self.now.to_be_bytes());
                self.trace.update((from as u32).to_be_bytes());
                self.trace.update((to as u32).to_be_bytes());
                self.trace.update(msg.encode());
                if self.nodes[to].core.is_none() {
                    return Ok(());
                }
                self.maybe_sync(to, from, msg.height());
                if self.nodes[to].seen.len() < 4096 {
                    self.nodes[to].seen.push(msg.clone());
                }
                self.feed(to, Input::Message((*msg).clone()))
            }
            Event::Sync { to, fin } => {
                self.trace.update([1u8]);
                self.trace.update(fin.digest);
                let node = &self.nodes[to];
                if node.core.is_none() || fin.height.0 != node.chain.len() as u64 + 1 {
                    return Ok(());
                }
                let checker = node.crypto.boxed();
                let set = self.set_of(&self.members(to, fin.height.0));
                if verify_certificate(
                    &*checker,
                    CHAIN_ID,
                    &set,
                    fin.height,
                    fin.digest,
                    &fin.certificate,
                )
                .is_err()
                    || !block_is_valid(&fin.block, fin.digest, fin.height)
                {
                    return Ok(());
                }
                self.on_commit(to, (*fin).clone())
            }
            Event::Timer {
                node,
                incarnation,
                height,
                round,
            } => {
                self.trace.update([2u8]);
                if self.nodes[node].incarnation != incarnation {
                    return Ok(());
                }
                self.feed(node, Input::Timeout { height, round })
            }
            Event::Built {
                node,
                incarnation,
                height,
                round,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(());
                }
                let payload: Vec<u8> = (0..32).map(|_| self.rng.gen()).collect();
                let ops = self.ops_to_propose(node, height.0);
                let block = borsh::to_vec(&SimBlock {
                    height: height.0,
                    proposer: node as u32,
                    valid: true,
                    payload,
                    ops,
                })
                .expect("borsh into a Vec never fails");
                let digest = digest_of(&block);
                self.first_proposal.entry(height.0).or_insert(self.now);
                self.feed(
                    node,
                    Input::BlockBuilt {
                        height,
                        round,
                        digest,
                        block: block.into(),
                    },
                )
            }
            Event::Validate {
                node,
                incarnation,
                height,
                round,
                digest,
                block,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(());
                }
                let valid = block_is_valid(&block, digest, height);
                self.feed(
                    node,
                    Input::BlockValidated {
                        height,
                        round,
                        digest,
                        valid,
                    },
                )
            }
            Event::Fault(f) => {
                self.trace.update([3u8]);
                self.on_fault(f)
            }
        }
    }

    fn on_fault(&mut self, f: Fault) -> Result<(), SafetyViolation> {
        match f {
            Fault::Crash { node, .. } => {
                let n = &mut self.nodes[node];
                n.core = None;
                n.incarnation += 1;
            }
            Fault::Restart { node, .. } => {
                if self.nodes[node].core.is_none() {
                    self.boot(node)?;
                }
            }
            Fault::Partition { groups, .. } => {
                let mut of = vec![usize::MAX; self.cfg.n];
                for (g, members) in groups.iter().enumerate() {
                    for m in members {
                        of[*m] = g;
                    }
                }
                self.partition = Some(of);
            }
            Fault::Heal { .. } => self.partition = None,
        }
        Ok(())
    }

    /// A peer sending for a height this node has finished gets that height's final
    /// block (block sync, with the certificate checked on arrival).
    fn maybe_sync(&mut self, me: usize, peer: usize, their_height: Height) {
        let h = their_height.0;
        let now = self.now;
        let node = &mut self.nodes[me];
        // At most one answer per peer and height per second: the answer may be lost, or
        // arrive while the peer is down.
        let recent = node
            .synced_to
            .get(&(peer, h))
            .is_some_and(|t| now < t + 1_000);
        if h == 0 || h > node.chain.len() as u64 || recent {
            return;
        }
        node.synced_to.insert((peer, h), now);
        let fin = Arc::new(node.chain[(h - 1) as usize].clone());
        if self.reachable(me, peer) {
            let at = self.now + self.cfg.latency_ms;
            self.schedule(at, Event::Sync { to: peer, fin });
        }
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.partition.as_ref().is_none_or(|p| p[a] == p[b])
    }

    fn feed(&mut self, i: usize, input: Input) -> Result<(), SafetyViolation> {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return Ok(());
        };
        let t = Instant::now();
        let outputs = core.handle(input);
        self.cpu[i] += t.elapsed();
        let round = core.round().0;
        self.max_round = self.max_round.max(round);
        for o in outputs {
            self.perform(i, o)?;
        }
        Ok(())
    }

    fn perform(&mut self, i: usize, o: Output) -> Result<(), SafetyViolation> {
        let inc = self.nodes[i].incarnation;
        let delay = self.cfg.app_delay_ms;
        match o {
            Output::Broadcast(m) => {
                let msgs = match self
                    .cfg
                    .byzantine
                    .iter()
                    .find(|(b, _)| *b == i)
                    .map(|(_, b)| *b)
                {
                    None => vec![(None, m)],
                    Some(b) => behavior::rewrite(b, i, m, self),
                };
                for (only, m) in msgs {
                    self.broadcast(i, Arc::new(m), only);
                }
            }
            Output::Persist(w) => self.nodes[i].wal = Some(w),
            Output::ScheduleTimeout {
                height,
                round,
                after_ms,
            } => self.schedule(
                self.now + after_ms,
                Event::Timer {
                    node: i,
                    incarnation: inc,
                    height,
                    round,
                },
            ),
            Output::RequestBlock { height, round } => self.schedule(
                self.now + delay,
                Event::Built {
                    node: i,
                    incarnation: inc,
                    height,
                    round,
                },
            ),
            Output::ValidateBlock {
                height,
                round,
                digest,
                block,
            } => self.schedule(
                self.now + delay,
                Event::Validate {
                    node: i,
                    incarnation: inc,
                    height,
                    round,
                    digest,
                    block,
                },
            ),
            Output::Commit(fin) => self.on_commit(i, fin)?,
            Output::Equivocation(e) => {
                self.equivocations += 1;
                if self.nodes[i].evidence.len() < 64 {
                    self.nodes[i].evidence.push(e);
                }
            }
        }
        Ok(())
    }

    fn on_commit(&mut self, i: usize, fin: Finalized) -> Result<(), SafetyViolation> {
        let h = fin.height.0;
        self.trace.update([4u8]);
        self.trace.update((i as u32).to_be_bytes());
        self.trace.update(fin.digest);
        match self.final_digest.get(&h) {
            Some(d) if *d != fin.digest => {
                return Err(SafetyViolation {
                    seed: self.cfg.seed,
                    height: h,
                    first: *d,
                    second: fin.digest,
                    node: i,
                })
            }
            Some(_) => {}
            None => {
                self.final_digest.insert(h, fin.digest);
                self.commit_times.insert(h, self.now);
                if self.nodes[i].chain.len() as u64 + 1 == h {
                    let set: Vec<usize> = self.members(i, h).into_iter().map(|(m, _)| m).collect();
                    let signers = fin
                        .certificate
                        .seals
                        .iter()
                        .filter_map(|(k, _)| set.get(k.0 as usize).copied())
                        .collect();
                    let proposer = proposer_of(&fin.block).unwrap_or(usize::MAX);
                    self.sealed.insert(
                        h,
                        Sealed {
                            set,
                            proposer,
                            signers,
                        },
                    );
                }
            }
        }
        if !self.cfg.is_byzantine(i) {
            if let Some(t0) = self.first_proposal.get(&h) {
                self.finality.push(self.now - t0);
            }
        }
        let node = &mut self.nodes[i];
        if node.chain.len() as u64 + 1 != h {
            return Ok(());
        }
        node.prev_proposer = proposer_of(&fin.block);
        node.chain.push(fin);
        node.wal = None;
        let (set, prev_proposer) = self.start_set(i, h + 1);
        let next = Input::Start {
            height: Height(h + 1),
            set,
            prev_proposer,
            restore: None,
        };
        self.feed(i, next)
    }

    /// The set node `i` starts `height` with, and the index in it of the last block's
    /// proposer.
    fn start_set(&self, i: usize, height: u64) -> (ValidatorSet, Option<ValidatorIndex>) {
        let members = self.members(i, height);
        let prev = self.nodes[i]
            .prev_proposer
            .and_then(|p| members.iter().position(|(m, _)| *m == p))
            .map(|k| ValidatorIndex(k as u32));
        (self.set_of(&members), prev)
    }

    fn set_of(&self, members: &[(usize, u64)]) -> ValidatorSet {
        ValidatorSet::new(
            members
                .iter()
                .map(|(m, p)| Validator {
                    key: self.keys[*m],
                    power: *p,
                })
                .collect(),
        )
        .expect("a valid simulated set")
    }

    /// The members (node id, power), in node-id order, that seal `height` by node
    /// `i`'s chain.
    pub fn members(&self, i: usize, height: u64) -> Vec<(usize, u64)> {
        let all = || (0..self.cfg.n).map(|m| (m, self.powers[m])).collect();
        let Some(st) = &self.cfg.staking else {
            return all();
        };
        let eb = st.epoch_blocks.max(1);
        let epoch = height.saturating_sub(1) / eb;
        let chain = &self.nodes[i].chain;
        let mut sets: Vec<Vec<(usize, u64)>> =
            vec![st.genesis.iter().map(|m| (*m, self.powers[*m])).collect()];
        let checker = self.nodes[i].crypto.boxed();
        for e in 0..epoch {
            let mut next = sets[e as usize].clone();
            let blocks = chain.iter().skip((e * eb) as usize).take(eb as usize);
            for fin in blocks {
                for op in ops_of(&fin.block) {
                    match op {
                        StakeOp::Join { node, power } => {
                            let node = node as usize;
                            if node < self.cfg.n
                                && power > 0
                                && !next.iter().any(|(m, _)| *m == node)
                            {
                                next.push((node, power));
                            }
                        }
                        StakeOp::Leave { node } => next.retain(|(m, _)| *m != node as usize),
                        StakeOp::Evidence(ev) => {
                            if let Some(m) = self.offender(&*checker, &sets, eb, &ev) {
                                next.retain(|(x, _)| *x != m);
                            }
                        }
                    }
                }
            }
            next.sort();
            if next.is_empty() {
                next = sets[e as usize].clone();
            }
            sets.push(next);
        }
        sets.pop().unwrap_or_else(all)
    }

    /// The node id evidence convicts: both signatures verify against the signer's key
    /// in the set of the evidence's height, over different digests at one height and
    /// round. `None` for anything else.
    fn offender(
        &self,
        checker: &dyn Crypto,
        sets: &[Vec<(usize, u64)>],
        eb: u64,
        ev: &emc_consensus::Evidence,
    ) -> Option<usize> {
        let (a, b) = (&ev.first, &ev.second);
        if a.signer != b.signer
            || a.body.height != b.body.height
            || a.body.round != b.body.round
            || a.body.digest == b.body.digest
        {
            return None;
        }
        let epoch = a.body.height.0.saturating_sub(1) / eb;
        let (m, _) = sets.get(epoch as usize)?.get(a.signer.0 as usize)?;
        let key = self.keys[*m];
        let ok = |v: &emc_consensus::Signed<emc_consensus::Vote>| {
            checker.verify(
                &key,
                &emc_consensus::messages::payload(CHAIN_ID, ev.kind, &v.body),
                &v.sig,
            )
        };
        (ok(a) && ok(b)).then_some(*m)
    }

    /// What node `i` puts into the block it builds at `height`: planned operations due
    /// by then and the evidence it holds, less what its chain already has.
    fn ops_to_propose(&self, i: usize, height: u64) -> Vec<StakeOp> {
        let Some(st) = &self.cfg.staking else {
            return Vec::new();
        };
        let done: Vec<StakeOp> = self.nodes[i]
            .chain
            .iter()
            .flat_map(|f| ops_of(&f.block))
            .collect();
        let mut out: Vec<StakeOp> = st
            .ops
            .iter()
            .filter(|(at, op)| *at <= height && !done.contains(op))
            .map(|(_, op)| op.clone())
            .collect();
        if st.submit_evidence {
            for e in &self.nodes[i].evidence {
                let op = StakeOp::Evidence(Box::new(e.clone()));
                let signer_done = done.iter().any(|d| {
                    matches!(d, StakeOp::Evidence(x) if x.first.signer == e.first.signer && x.first.body.height == e.first.body.height)
                });
                if !signer_done && !out.contains(&op) {
                    out.push(op);
                }
            }
        }
        out
    }

    fn broadcast(&mut self, from: usize, msg: Arc<Message>, only: Option<Vec<usize>>) {
        for to in 0..self.cfg.n {
            if to == from || only.as_ref().is_some_and(|o| !o.contains(&to)) {
                continue;
            }
            self.messages += 1;
            if !self.reachable(from, to) {
                continue;
            }
            if self
                .cfg
                .byzantine
                .iter()
                .any(|(b, beh)| *b == from && *beh == Behavior::DropHalf)
                && self.rng.gen_bool(0.5)
            {
                continue;
            }
            let jitter = if self.cfg.jitter_ms > 0 {
                self.rng.gen_range(0..=self.cfg.jitter_ms)
            } else {
                0
            };
            let mut at = self.now + self.cfg.latency_ms + jitter;
            // A lost packet is sent again by the transport (TCP under libp2p) after a
            // retransmission timeout; IBFT, like the QBFT spec, assumes links that
            // eventually deliver. Permanent loss is what partitions and faulty nodes do.
            let mut tries = 0;
            while tries < 8 && self.rng.gen_bool(self.cfg.loss) {
                at += RETRANSMIT_MS << tries;
                tries += 1;
            }
            self.schedule(
                at,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }
}

/// Runs one configuration; convenience for tests.
pub fn run(cfg: SimConfig) -> Result<Outcome, SafetyViolation> {
    Sim::new(cfg).run()
}

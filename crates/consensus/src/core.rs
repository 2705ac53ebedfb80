//! The IBFT 2.0 state machine of one validator (or of a follower, which checks and
//! counts but never signs). Each handler is named after the rule it implements; the
//! rule numbers refer to the module header of the crate.

use crate::{
    crypto::Crypto,
    justify::{verify_justification, verify_round_change},
    messages::{
        payload, CommitBody, Justification, Kind, Message, Proposal, RoundChange, RoundChangeBody,
        Signed, Vote,
    },
    CommitCertificate, Evidence, Finalized, Height, Input, Output, Prepared, Round, ValidatorIndex,
    ValidatorKey, ValidatorSet, WalState,
};
use alloy_primitives::{Bytes, B256};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug)]
pub struct Config {
    /// Bound into every signature: a signature is never valid on another chain.
    pub chain_id: u64,
    /// Round r lasts `timeout_base_ms * 2^r`.
    pub timeout_base_ms: u64,
    /// Messages up to this many heights ahead are kept until the node gets there.
    pub max_future_heights: u64,
    /// At most this many future-height messages are kept in all.
    pub max_buffered: usize,
    /// PREPAREs and COMMITs more than this many rounds ahead are dropped.
    pub round_window: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            chain_id: 0,
            timeout_base_ms: 1_000,
            max_future_heights: 4,
            max_buffered: 8_192,
            round_window: 16,
        }
    }
}

type Votes<T> = BTreeMap<Round, BTreeMap<B256, BTreeMap<ValidatorIndex, T>>>;

pub struct Core {
    cfg: Config,
    crypto: Box<dyn Crypto>,
    key: ValidatorKey,
    started: bool,
    /// Everything about the height in progress; replaced whole at each `Start`.
    h: HeightState,
    future: BTreeMap<Height, Vec<Message>>,
    future_len: usize,
}

#[derive(Default)]
struct HeightState {
    height: Height,
    round: Round,
    set: Option<ValidatorSet>,
    prev: Option<ValidatorIndex>,
    me: Option<ValidatorIndex>,
    committed: bool,
    /// The proposal accepted (PREPARE sent or due) in the current round.
    accepted: Option<(Round, B256)>,
    /// Proposals waiting for the chain's validation.
    pending: BTreeMap<(Round, B256), Proposal>,
    /// Blocks validated or built at this height, by digest.
    blocks: HashMap<B256, Bytes>,
    prepares: Votes<Signed<Vote>>,
    commits: Votes<Signed<CommitBody>>,
    /// The latest (highest-round) ROUND-CHANGE of each validator at this height.
    round_changes: BTreeMap<ValidatorIndex, RoundChange>,
    prepared: Option<Prepared>,
    signed: Vec<(Round, Kind, B256)>,
    proposed: BTreeSet<Round>,
    requested: BTreeSet<Round>,
    votes_seen: HashMap<(ValidatorIndex, Round, Kind), Signed<Vote>>,
    evidence_sent: BTreeSet<(ValidatorIndex, Round, Kind)>,
}

impl Core {
    pub fn new(cfg: Config, crypto: Box<dyn Crypto>) -> Self {
        let key = crypto.public_key();
        Self {
            cfg,
            crypto,
            key,
            started: false,
            h: HeightState::default(),
            future: BTreeMap::new(),
            future_len: 0,
        }
    }

    pub fn height(&self) -> Height {
        self.h.height
    }
    pub fn round(&self) -> Round {
        self.h.round
    }
    pub fn public_key(&self) -> ValidatorKey {
        self.key
    }
    pub fn is_committed(&self) -> bool {
        self.h.committed
    }
    pub fn wal_state(&self) -> WalState {
        WalState {
            height: self.h.height,
            round: self.h.round,
            prepared: self.h.prepared.clone(),
            signed: self.h.signed.clone(),
        }
    }

    /// Feeds one input; returns what the shell must do, in order.
    #[must_use]
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start {
                height,
                set,
                prev_proposer,
                restore,
            } => self.on_start(&mut out, height, set, prev_proposer, restore),
            Input::Message(m) => self.on_message(&mut out, m),
            Input::Timeout { height, round } => self.on_timeout(&mut out, height, round),
            Input::BlockBuilt {
                height,
                round,
                digest,
                block,
            } => self.on_block_built(&mut out, height, round, digest, block),
            Input::BlockValidated {
                height,
                round,
                digest,
                valid,
            } => self.on_block_validated(&mut out, height, round, digest, valid),
        }
        out
    }

    fn timeout_ms(&self, r: Round) -> u64 {
        self.cfg.timeout_base_ms.saturating_mul(1u64 << r.0.min(20))
    }

    fn set(&self) -> &ValidatorSet {
        self.h.set.as_ref().expect("handlers run only after Start")
    }

    fn proposer(&self, r: Round) -> ValidatorIndex {
        self.set().proposer(self.h.prev, r)
    }

    // ---- Start ------------------------------------------------------------------

    fn on_start(
        &mut self,
        out: &mut Vec<Output>,
        height: Height,
        set: ValidatorSet,
        prev: Option<ValidatorIndex>,
        restore: Option<WalState>,
    ) {
        self.h = HeightState::default();
        let future = std::mem::take(&mut self.future);
        self.future_len = 0;
        self.started = true;
        self.h.height = height;
        self.h.me = set.index_of(&self.key);
        self.h.set = Some(set);
        self.h.prev = prev;
        if let Some(w) = restore.filter(|w| w.height == height) {
            self.h.round = w.round;
            self.h.prepared = w.prepared;
            self.h.signed = w.signed;
        }
        out.push(Output::ScheduleTimeout {
            height,
            round: self.h.round,
            after_ms: self.timeout_ms(self.h.round),
        });
        // Rule 1: the proposer of round 0 asks the chain for a block.
        if self.h.round == Round(0)
            && self.h.me.is_some()
            && self.h.me == Some(self.proposer(Round(0)))
        {
            self.h.requested.insert(Round(0));
            out.push(Output::RequestBlock {
                height,
                round: Round(0),
            });
        }
        for (h, msgs) in future {
            if h == height {
                for m in msgs {
                    self.on_message(out, m);
                }
            } else if h > height {
                self.future_len += msgs.len();
                self.future.insert(h, msgs);
            }
        }
    }

    // ---- Messages ---------------------------------------------------------------

    fn on_message(&mut self, out: &mut Vec<Output>, m: Message) {
        let h = m.height();
        if !self.started || h > self.h.height {
            self.buffer(m);
            return;
        }
        if h < self.h.height || self.h.committed {
            return;
        }
        let r = m.round();
        let within_window = r.0 <= self.h.round.0.saturating_add(self.cfg.round_window);
        if self.set().get(m.signer()).is_none() {
            return;
        }
        match m {
            Message::Proposal(p) => self.on_proposal(out, p),
            Message::Prepare(v) if within_window => self.on_prepare(out, v),
            Message::Commit(c) if within_window => self.on_commit(out, c),
            Message::RoundChange(rc) => self.on_round_change(out, rc),
            _ => {}
        }
    }

    fn buffer(&mut self, m: Message) {
        let h = m.height();
        let base = if self.started {
            self.h.height
        } else {
            Height(0)
        };
        if h.0 > base.0.saturating_add(self.cfg.max_future_heights.max(1)) && self.started {
            return;
        }
        if self.future_len >= self.cfg.max_buffered {
            return;
        }
        self.future_len += 1;
        self.future.entry(h).or_default().push(m);
    }

    fn verify(
        &self,
        who: ValidatorIndex,
        kind: Kind,
        body: &impl borsh::BorshSerialize,
        sig: &crate::Sig,
    ) -> bool {
        match self.set().get(who) {
            Some(v) => self
                .crypto
                .verify(&v.key, &payload(self.cfg.chain_id, kind, body), sig),
            None => false,
        }
    }

    /// Records a signed vote; on a second, different one of the same kind at the same
    /// round from the same validator, reports the equivocation once and refuses it.
    fn record_vote(&mut self, out: &mut Vec<Output>, kind: Kind, v: &Signed<Vote>) -> bool {
        let key = (v.signer, v.body.round, kind);
        match self.h.votes_seen.get(&key) {
            None => {
                self.h.votes_seen.insert(key, v.clone());
                true
            }
            Some(prev) if prev.body.digest == v.body.digest => true,
            Some(prev) => {
                if self.h.evidence_sent.insert(key) {
                    out.push(Output::Equivocation(Evidence {
                        kind,
                        first: prev.clone(),
                        second: v.clone(),
                    }));
                }
                false
            }
        }
    }

    /// Rule 2: a valid proposal from proposer(r), for the current round with nothing
    /// accepted yet or for a higher round, justified when r > 0, goes to the chain for
    /// validation; PREPARE follows in [`Core::on_block_validated`].
    fn on_proposal(&mut self, out: &mut Vec<Output>, p: Proposal) {
        let Vote {
            height,
            round: r,
            digest: d,
        } = p.signed.body;
        if r < self.h.round || p.signed.signer != self.proposer(r) {
            return;
        }
        if !self.verify(
            p.signed.signer,
            Kind::Proposal,
            &p.signed.body,
            &p.signed.sig,
        ) {
            return;
        }
        if !self.record_vote(out, Kind::Proposal, &p.signed) {
            return;
        }
        if self.h.pending.contains_key(&(r, d)) || self.h.accepted.is_some_and(|(ar, _)| ar >= r) {
            return;
        }
        if r > Round(0)
            && verify_justification(
                &*self.crypto,
                self.cfg.chain_id,
                self.set(),
                height,
                r,
                d,
                &p.justification,
            )
            .is_err()
        {
            return;
        }
        out.push(Output::ValidateBlock {
            height,
            round: r,
            digest: d,
            block: p.block.clone(),
        });
        self.h.pending.insert((r, d), p);
    }

    fn on_block_validated(
        &mut self,
        out: &mut Vec<Output>,
        h: Height,
        r: Round,
        d: B256,
        valid: bool,
    ) {
        if h != self.h.height || self.h.committed || !self.started {
            return;
        }
        let Some(p) = self.h.pending.remove(&(r, d)) else {
            return;
        };
        if !valid || r < self.h.round || self.h.accepted.is_some_and(|(ar, _)| ar >= r) {
            return;
        }
        if r > self.h.round {
            // A justified proposal for a higher round moves the node there.
            self.enter_round(out, r, false);
        }
        self.accept(out, r, d, p.block);
    }

    fn accept(&mut self, out: &mut Vec<Output>, r: Round, d: B256, block: Bytes) {
        self.h.accepted = Some((r, d));
        self.h.blocks.insert(d, block);
        if let Some(me) = self.h.me {
            let body = Vote {
                height: self.h.height,
                round: r,
                digest: d,
            };
            if let Some(sig) = self.sign_once(
                out,
                r,
                Kind::Prepare,
                d,
                payload(self.cfg.chain_id, Kind::Prepare, &body),
            ) {
                let v = Signed {
                    body,
                    signer: me,
                    sig,
                };
                out.push(Output::Broadcast(Message::Prepare(v.clone())));
                self.add_prepare(v);
            }
        }
        self.check_prepared(out);
        let rounds: Vec<Round> = self.h.commits.keys().copied().collect();
        for cr in rounds {
            self.check_committed(out, cr, d);
        }
    }

    fn on_prepare(&mut self, out: &mut Vec<Output>, v: Signed<Vote>) {
        if v.body.round < self.h.round || !self.verify(v.signer, Kind::Prepare, &v.body, &v.sig) {
            return;
        }
        if !self.record_vote(out, Kind::Prepare, &v) {
            return;
        }
        self.add_prepare(v);
        self.check_prepared(out);
    }

    fn add_prepare(&mut self, v: Signed<Vote>) {
        self.h
            .prepares
            .entry(v.body.round)
            .or_default()
            .entry(v.body.digest)
            .or_default()
            .entry(v.signer)
            .or_insert(v);
    }

    /// Rule 3: a PREPARE quorum for the accepted digest prepares it; COMMIT follows.
    fn check_prepared(&mut self, out: &mut Vec<Output>) {
        let Some((r, d)) = self.h.accepted else {
            return;
        };
        if r != self.h.round
            || self
                .h
                .signed
                .iter()
                .any(|(sr, k, _)| *sr == r && *k == Kind::Commit)
        {
            return;
        }
        let Some(votes) = self.h.prepares.get(&r).and_then(|m| m.get(&d)) else {
            return;
        };
        if self.set().weight(votes.keys()) < self.set().quorum() {
            return;
        }
        let prepares: Vec<Signed<Vote>> = votes.values().cloned().collect();
        let block = self.h.blocks.get(&d).cloned().unwrap_or_default();
        let already = self
            .h
            .prepared
            .as_ref()
            .is_some_and(|p| p.round == r && p.digest == d);
        if !already {
            self.h.prepared = Some(Prepared {
                round: r,
                digest: d,
                block,
                prepares,
            });
        }
        let Some(me) = self.h.me else { return };
        let vote = Vote {
            height: self.h.height,
            round: r,
            digest: d,
        };
        let seal = self
            .crypto
            .sign(&payload(self.cfg.chain_id, Kind::Seal, &vote));
        let body = CommitBody { vote, seal };
        if let Some(sig) = self.sign_once(
            out,
            r,
            Kind::Commit,
            d,
            payload(self.cfg.chain_id, Kind::Commit, &body),
        ) {
            let c = Signed {
                body,
                signer: me,
                sig,
            };
            out.push(Output::Broadcast(Message::Commit(c.clone())));
            self.add_commit(c);
            self.check_committed(out, r, d);
        }
    }

    fn on_commit(&mut self, out: &mut Vec<Output>, c: Signed<CommitBody>) {
        let vote = c.body.vote;
        if !self.verify(c.signer, Kind::Commit, &c.body, &c.sig)
            || !self.verify(c.signer, Kind::Seal, &vote, &c.body.seal)
        {
            return;
        }
        self.add_commit(c);
        self.check_committed(out, vote.round, vote.digest);
    }

    fn add_commit(&mut self, c: Signed<CommitBody>) {
        let v = c.body.vote;
        self.h
            .commits
            .entry(v.round)
            .or_default()
            .entry(v.digest)
            .or_default()
            .entry(c.signer)
            .or_insert(c);
    }

    /// Rule 4: a COMMIT quorum for a block this node has makes it final.
    fn check_committed(&mut self, out: &mut Vec<Output>, r: Round, d: B256) {
        if self.h.committed {
            return;
        }
        let Some(votes) = self.h.commits.get(&r).and_then(|m| m.get(&d)) else {
            return;
        };
        if self.set().weight(votes.keys()) < self.set().quorum() {
            return;
        }
        let Some(block) = self.h.blocks.get(&d).cloned() else {
            return;
        };
        let seals = votes.iter().map(|(i, c)| (*i, c.body.seal)).collect();
        self.h.committed = true;
        out.push(Output::Commit(Finalized {
            height: self.h.height,
            digest: d,
            block,
            certificate: CommitCertificate { round: r, seals },
        }));
    }

    // ---- Rounds -----------------------------------------------------------------

    /// Rule 5: the round timer expired: go to r+1 and say so with a ROUND-CHANGE that
    /// carries this node's prepared certificate.
    fn on_timeout(&mut self, out: &mut Vec<Output>, h: Height, r: Round) {
        if !self.started || h != self.h.height || r != self.h.round || self.h.committed {
            return;
        }
        self.enter_round(out, Round(r.0 + 1), true);
    }

    fn enter_round(&mut self, out: &mut Vec<Output>, r: Round, send_round_change: bool) {
        self.h.round = r;
        self.h.accepted = None;
        self.h.prepares = self.h.prepares.split_off(&r);
        out.push(Output::ScheduleTimeout {
            height: self.h.height,
            round: r,
            after_ms: self.timeout_ms(r),
        });
        if send_round_change {
            self.send_round_change(out);
        }
        self.check_round_change_quorum(out);
    }

    fn send_round_change(&mut self, out: &mut Vec<Output>) {
        let Some(me) = self.h.me else { return };
        let body = RoundChangeBody {
            height: self.h.height,
            round: self.h.round,
            prepared: self.h.prepared.as_ref().map(|p| (p.round, p.digest)),
        };
        let id = B256::from(<[u8; 32]>::from(Sha256::digest(
            borsh::to_vec(&body).expect("borsh into a Vec never fails"),
        )));
        let Some(sig) = self.sign_once(
            out,
            self.h.round,
            Kind::RoundChange,
            id,
            payload(self.cfg.chain_id, Kind::RoundChange, &body),
        ) else {
            return;
        };
        let rc = RoundChange {
            signed: Signed {
                body,
                signer: me,
                sig,
            },
            prepared_block: self.h.prepared.as_ref().map(|p| p.block.clone()),
            prepares: self
                .h
                .prepared
                .as_ref()
                .map(|p| p.prepares.clone())
                .unwrap_or_default(),
        };
        out.push(Output::Broadcast(Message::RoundChange(rc.clone())));
        self.h.round_changes.insert(me, rc);
    }

    /// Rule 6: store the latest ROUND-CHANGE of each validator; jump ahead when those
    /// for higher rounds hold more than 1/3 of the power; propose on a quorum.
    fn on_round_change(&mut self, out: &mut Vec<Output>, rc: RoundChange) {
        let signer = rc.signed.signer;
        let r = rc.signed.body.round;
        if self
            .h
            .round_changes
            .get(&signer)
            .is_some_and(|old| old.signed.body.round >= r)
        {
            return;
        }
        if verify_round_change(&*self.crypto, self.cfg.chain_id, self.set(), &rc).is_err() {
            return;
        }
        self.h.round_changes.insert(signer, rc);
        if let Some(target) = self.jump_target() {
            self.enter_round(out, target, true);
        } else {
            self.check_round_change_quorum(out);
        }
    }

    /// The highest round r* above the current one such that ROUND-CHANGEs for rounds
    /// >= r* hold more than 1/3 of the power: at least one honest validator is there.
    fn jump_target(&self) -> Option<Round> {
        let mut higher: Vec<(Round, ValidatorIndex)> = self
            .h
            .round_changes
            .iter()
            .filter(|(_, rc)| rc.signed.body.round > self.h.round)
            .map(|(i, rc)| (rc.signed.body.round, *i))
            .collect();
        higher.sort_by(|a, b| b.cmp(a));
        let mut power = 0;
        for (r, i) in higher {
            power += self.set().power(i);
            if power >= self.set().weak_quorum() {
                return Some(r);
            }
        }
        None
    }

    fn check_round_change_quorum(&mut self, out: &mut Vec<Output>) {
        let r = self.h.round;
        if self.h.committed
            || r == Round(0)
            || self.h.me != Some(self.proposer(r))
            || self.h.proposed.contains(&r)
        {
            return;
        }
        let Some((justification, highest)) = self.justification(r) else {
            return;
        };
        match highest {
            // Re-propose the value of the highest prepared round: it may be final somewhere.
            Some((d, block)) => self.propose(out, r, d, block, justification),
            None => {
                if self.h.requested.insert(r) {
                    out.push(Output::RequestBlock {
                        height: self.h.height,
                        round: r,
                    });
                }
            }
        }
    }

    /// The ROUND-CHANGE quorum for `r` and, if any is prepared, the highest prepared
    /// value with its block; `None` without a quorum.
    #[allow(clippy::type_complexity)]
    fn justification(&self, r: Round) -> Option<(Justification, Option<(B256, Bytes)>)> {
        let rcs: Vec<&RoundChange> = self
            .h
            .round_changes
            .values()
            .filter(|rc| rc.signed.body.round == r)
            .collect();
        if self.set().weight(rcs.iter().map(|rc| &rc.signed.signer)) < self.set().quorum() {
            return None;
        }
        let highest = rcs
            .iter()
            .filter_map(|rc| rc.signed.body.prepared.map(|(pr, _)| (pr, *rc)))
            .max_by_key(|(pr, _)| *pr)
            .map(|(_, rc)| rc);
        let j = Justification {
            round_changes: rcs.iter().map(|rc| rc.signed.clone()).collect(),
            prepares: highest.map(|rc| rc.prepares.clone()).unwrap_or_default(),
        };
        let value = highest.and_then(|rc| {
            let (_, d) = rc.signed.body.prepared?;
            Some((d, rc.prepared_block.clone()?))
        });
        Some((j, value))
    }

    fn on_block_built(
        &mut self,
        out: &mut Vec<Output>,
        h: Height,
        r: Round,
        d: B256,
        block: Bytes,
    ) {
        if !self.started
            || h != self.h.height
            || r != self.h.round
            || self.h.committed
            || self.h.me != Some(self.proposer(r))
            || self.h.proposed.contains(&r)
        {
            return;
        }
        if r == Round(0) {
            self.propose(out, r, d, block, Justification::default());
            return;
        }
        match self.justification(r) {
            Some((j, None)) => self.propose(out, r, d, block, j),
            // A prepared value appeared meanwhile: it must be re-proposed instead.
            Some((j, Some((pd, pb)))) => self.propose(out, r, pd, pb, j),
            None => {}
        }
    }

    fn propose(
        &mut self,
        out: &mut Vec<Output>,
        r: Round,
        d: B256,
        block: Bytes,
        justification: Justification,
    ) {
        let Some(me) = self.h.me else { return };
        let body = Vote {
            height: self.h.height,
            round: r,
            digest: d,
        };
        let Some(sig) = self.sign_once(
            out,
            r,
            Kind::Proposal,
            d,
            payload(self.cfg.chain_id, Kind::Proposal, &body),
        ) else {
            return;
        };
        self.h.proposed.insert(r);
        let signed = Signed {
            body,
            signer: me,
            sig,
        };
        self.h
            .votes_seen
            .insert((me, r, Kind::Proposal), signed.clone());
        out.push(Output::Broadcast(Message::Proposal(Proposal {
            signed,
            block: block.clone(),
            justification,
        })));
        if self.h.accepted.is_none() && r == self.h.round {
            self.accept(out, r, d, block);
        }
    }

    /// Signs at most one thing of each kind per round at this height, across restarts:
    /// the first signature of a (round, kind) is persisted before it is returned; a
    /// second with another digest is refused.
    fn sign_once(
        &mut self,
        out: &mut Vec<Output>,
        r: Round,
        kind: Kind,
        d: B256,
        payload: Vec<u8>,
    ) -> Option<crate::Sig> {
        match self
            .h
            .signed
            .iter()
            .find(|(sr, k, _)| *sr == r && *k == kind)
        {
            Some((_, _, prev)) if *prev != d => return None,
            Some(_) => {}
            None => {
                self.h.signed.push((r, kind, d));
                out.push(Output::Persist(self.wal_state()));
            }
        }
        Some(self.crypto.sign(&payload))
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

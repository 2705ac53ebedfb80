//! The rules of one call tried on up to [`MAX_TRIES`] routes, as a pure state machine:
//! the gateway reports what happened on each route ([`Event`]), the machine says what
//! follows ([`Decision`]) and, when no route served, what the caller is told.
//!
//! The rules, each with its own table test below:
//! 1. A route whose price buys no unit within the call's budget is passed over with
//!    402 before anything is sent; the node is not blamed.
//! 2. A route with no room (as many calls running as it announced it takes) is passed
//!    over with 429; the node is not blamed.
//! 3. A node that says it is busy (429, or 503 draining) is not blamed: a busy node is
//!    not a bad one. The next route is tried.
//! 4. A node that refuses the request or its budget for what they are (400, 402, 404,
//!    413) is not blamed either. The next route is tried.
//! 5. Any other failure (no answer in time, a broken stream, a runtime error) counts
//!    against the node's reliability, and the next route is tried.
//! 6. A result whose signature or result hash does not match what was asked and sent
//!    counts against the node and is not charged; the next route is tried.
//! 7. Only a checked result is charged: the reservation becomes the charge.
//! 8. When no route served, the reservation is released (nothing is charged), and the
//!    caller hears 429 if every route was busy (retry soon), 402 if none fit the
//!    budget, a caller's error (4xx) as the node said it, else 503 listing each route.

use crate::policy;
use alloy_primitives::U256;
use emc_protocol::{clip, CallError, NodeId};

/// Most routes one call is tried on.
pub const MAX_TRIES: usize = 3;

/// What happened on one route.
#[derive(Debug)]
pub enum Event {
    /// The route's price buys no unit within the budget (rule 1).
    OverBudget { unit_cost: U256, budget: U256 },
    /// The router holds the route full (rule 2).
    NoRoom,
    /// The call went out and failed with this error (rules 3 to 5).
    Failed(CallError),
    /// The node's signed result does not match the call (rule 6).
    Mismatch,
    /// The node's signed result checked (rule 7). For a stream: its head arrived and
    /// it is passed on; its result is checked, and charged, at its end.
    Checked,
}

/// What the gateway does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try the next route (if any); `blame` counts the outcome against this node.
    Next { blame: bool },
    /// Charge the reservation and answer with this route's reply.
    Charge,
}

/// The message a mismatched result is refused with.
pub const MISMATCH: &str = "the node's signed result does not match what was asked and sent";

/// One call's attempts so far.
#[derive(Debug, Default)]
pub struct Attempt {
    why: Vec<(NodeId, CallError)>,
}

impl Attempt {
    /// Records what happened on `node`'s route and decides what follows.
    pub fn on(&mut self, node: NodeId, event: Event) -> Decision {
        let (error, blame) = match event {
            Event::Checked => return Decision::Charge,
            Event::OverBudget { unit_cost, budget } => (
                CallError::Payment(format!(
                    "one unit costs {unit_cost} wei there, over the call's budget of {budget}"
                )),
                false,
            ),
            Event::NoRoom => (
                CallError::Saturated("as many calls are running there as it takes".into()),
                false,
            ),
            Event::Mismatch => (CallError::BadSignature(MISMATCH.into()), true),
            Event::Failed(e) => {
                let blame = e.counts_against_node();
                (e, blame)
            }
        };
        self.why.push((node, error));
        Decision::Next { blame }
    }

    /// What the caller is told when no route served `app` (rule 8).
    pub fn give_up(self, app: &str) -> CallError {
        if self.why.is_empty() {
            return CallError::Unavailable(format!("no route for {}", clip(app)));
        }
        let list = self
            .why
            .iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        let all = |f: fn(&CallError) -> bool| self.why.iter().all(|(_, e)| f(e));
        if all(CallError::is_busy) {
            return CallError::Saturated(format!(
                "every node tried for {} is busy ({list}); retry shortly",
                clip(app)
            ));
        }
        if all(|e| matches!(e, CallError::Payment(_))) {
            return CallError::Payment(format!("no node fits the call's budget: {list}"));
        }
        if let Some((_, e)) = self
            .why
            .iter()
            .find(|(_, e)| (400..500).contains(&e.status()) && !e.is_busy())
        {
            return CallError::from_status(e.status(), e.to_string());
        }
        let n = self.why.len();
        CallError::Unavailable(format!("{n} node(s) tried, none answered: {list}"))
    }
}

/// Why no route could even be tried, as the caller hears it.
pub fn no_route(e: policy::NoRoute) -> CallError {
    match e {
        policy::NoRoute::NoApp(app) => CallError::no_app(&app),
        policy::NoRoute::Unregistered(_) => CallError::Unavailable(e.to_string()),
        policy::NoRoute::AboveCap { .. } => CallError::Payment(e.to_string()),
        policy::NoRoute::Saturated(_) => CallError::Saturated(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;

    fn node(i: u8) -> NodeId {
        NodeId(B256::repeat_byte(i))
    }

    /// Runs `events` (one per route) and returns each decision and the final error.
    fn run(events: Vec<Event>) -> (Vec<Decision>, Option<CallError>) {
        let mut a = Attempt::default();
        let mut decisions = Vec::new();
        for (i, ev) in events.into_iter().enumerate() {
            let d = a.on(node(i as u8 + 1), ev);
            decisions.push(d);
            if d == Decision::Charge {
                return (decisions, None);
            }
        }
        (decisions, Some(a.give_up("chat")))
    }

    const NEXT: Decision = Decision::Next { blame: false };
    const BLAME: Decision = Decision::Next { blame: true };

    #[test]
    fn rule_1_a_price_over_the_budget_is_passed_over_unblamed_with_402() {
        let ev = Event::OverBudget {
            unit_cost: U256::from(10),
            budget: U256::from(9),
        };
        let (d, e) = run(vec![ev]);
        assert_eq!(d, vec![NEXT]);
        let e = e.expect("no route served");
        assert_eq!(e.status(), 402);
        assert!(e.to_string().contains("one unit costs 10 wei"), "{e}");
        let escrow = crate::receipts::Tariff::Escrow {
            price: U256::from(10),
        };
        assert_eq!(escrow.max_units(U256::from(9)), None);
        assert!(escrow.max_units(U256::from(1_000)).is_some());
    }

    #[test]
    fn rule_2_a_full_route_is_passed_over_unblamed_with_429() {
        let (d, e) = run(vec![Event::NoRoom, Event::NoRoom]);
        assert_eq!(d, vec![NEXT, NEXT]);
        assert_eq!(e.expect("none served").status(), 429);
    }

    #[test]
    fn rule_3_a_busy_node_is_not_blamed() {
        let table = [
            CallError::Saturated("2 running, 4 queued".into()),
            CallError::Draining,
        ];
        for e in table {
            let (d, out) = run(vec![Event::Failed(e)]);
            assert_eq!(d, vec![NEXT]);
            assert_eq!(out.expect("none served").status(), 429);
        }
    }

    #[test]
    fn rule_4_a_refused_request_is_not_blamed_and_reaches_the_caller_as_said() {
        let table = [
            (CallError::BadRequest("no messages".into()), 400),
            (CallError::Payment("an embedding of 900 tokens".into()), 402),
            (CallError::no_app("gpt-4o"), 404),
            (CallError::TooLarge("a body of 9 MB".into()), 413),
        ];
        for (e, status) in table {
            let said = e.to_string();
            let (d, out) = run(vec![Event::Failed(e)]);
            assert_eq!(d, vec![NEXT], "{said}");
            let out = out.expect("none served");
            assert_eq!(out.status(), status, "{said}");
            assert!(out
                .to_string()
                .contains(said.split(": ").last().unwrap_or("")));
        }
    }

    #[test]
    fn rule_5_other_failures_are_blamed_and_the_next_route_is_tried() {
        let table = [
            CallError::Timeout("no reply in 120s".into()),
            CallError::Unavailable("stream: reset".into()),
            CallError::Runtime("the model panicked".into()),
        ];
        for e in table {
            let (d, _) = run(vec![Event::Failed(e), Event::Checked]);
            assert_eq!(d, vec![BLAME, Decision::Charge]);
        }
        let (_, out) = run(vec![Event::Failed(CallError::Timeout("t".into()))]);
        let out = out.expect("none served");
        assert_eq!(out.status(), 503);
        assert!(out.to_string().contains("1 node(s) tried"), "{out}");
    }

    #[test]
    fn rule_6_a_mismatched_result_is_blamed_and_not_charged() {
        let (d, out) = run(vec![Event::Mismatch]);
        assert_eq!(d, vec![BLAME]);
        let out = out.expect("not charged: no route served");
        assert!(out.to_string().contains(MISMATCH), "{out}");
        let (d, out) = run(vec![Event::Mismatch, Event::Checked]);
        assert_eq!(d, vec![BLAME, Decision::Charge]);
        assert!(out.is_none());
    }

    #[test]
    fn rule_7_only_a_checked_result_is_charged() {
        let (d, out) = run(vec![Event::NoRoom, Event::Checked]);
        assert_eq!(d, vec![NEXT, Decision::Charge]);
        assert!(out.is_none());
        for ev in [
            Event::NoRoom,
            Event::Mismatch,
            Event::Failed(CallError::Timeout("t".into())),
            Event::OverBudget {
                unit_cost: U256::from(2),
                budget: U256::from(1),
            },
        ] {
            assert_ne!(Attempt::default().on(node(1), ev), Decision::Charge);
        }
    }

    #[test]
    fn rule_8_a_mixed_failure_says_each_route_and_the_worst_status() {
        let (_, out) = run(vec![
            Event::NoRoom,
            Event::Failed(CallError::Timeout("no reply".into())),
            Event::Failed(CallError::Saturated("full".into())),
        ]);
        let out = out.expect("none served");
        assert_eq!(out.status(), 503, "not all busy: {out}");
        let said = out.to_string();
        assert!(said.contains("3 node(s) tried"), "{said}");
        for i in 1..=3u8 {
            assert!(said.contains(&node(i).to_string()), "{said}");
        }
        let (_, out) = run(vec![
            Event::OverBudget {
                unit_cost: U256::from(5),
                budget: U256::from(1),
            },
            Event::Failed(CallError::Payment("over".into())),
        ]);
        assert_eq!(out.expect("none").status(), 402);
    }
}

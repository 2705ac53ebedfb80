//! Two in-process peers on loopback: one sends, the other judges. A sender of
//! oversized or rejected messages is banned; one whose messages are accepted is not.

use emc_p2p::{Command, Event, GossipLimits, MessageAcceptance, P2p, P2pConfig, Topic};
use std::time::Duration;

fn peer(seed: u8, bootnode: Option<String>, limits: GossipLimits) -> P2p {
    emc_p2p::start(P2pConfig {
        key_seed: [seed; 32],
        listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
        bootnodes: bootnode
            .into_iter()
            .map(|b| b.parse().expect("bootnode"))
            .collect(),
        chain_id: 7,
        limits,
    })
    .expect("start")
}

/// What the judge did with the sender: banned it (in time), and how many of its
/// messages it received.
struct Outcome {
    banned: bool,
    delivered: u32,
}

/// A sender with raised limits publishes `data(i)` on `topic` every 100 ms to a
/// judge with the default limits, which gives `verdict` to all it receives, for at
/// most `secs` seconds (a ban ends it at once, so a generous limit costs a passing
/// test nothing: a loaded CI machine once needed more than 20 s).
async fn banned(
    topic: Topic,
    data: impl Fn(u32) -> Vec<u8>,
    verdict: MessageAcceptance,
    secs: u64,
) -> Outcome {
    let mut judge = peer(1, None, GossipLimits::default());
    let addr = judge
        .listening
        .wait_for(|a| !a.is_empty())
        .await
        .expect("judge listens")[0]
        .clone();
    let boot = format!("{addr}/p2p/{}", judge.peer_id);
    let raised = GossipLimits {
        consensus: 64 << 20,
        transactions: 64 << 20,
    };
    let sender = peer(2, Some(boot), raised);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut i = 0;
    let mut delivered = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Outcome { banned: false, delivered };
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                i += 1;
                let _ = sender.commands.send(Command::Publish(topic, data(i)));
            }
            ev = judge.events.recv() => match ev {
                Some(Event::Banned(p)) => return Outcome { banned: p == sender.peer_id, delivered },
                Some(Event::Gossip { id, from, .. }) => {
                    delivered += 1;
                    let _ = judge.commands.send(Command::Validate(id, from, verdict));
                }
                Some(_) => {}
                None => return Outcome { banned: false, delivered },
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_of_oversized_consensus_messages_is_banned() {
    let over = emc_p2p::MAX_GOSSIP_BYTES + 1024;
    let accept = MessageAcceptance::Accept;
    assert!(
        banned(Topic::Consensus, |i| vec![i as u8; over], accept, 60)
            .await
            .banned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_of_oversized_transactions_is_banned() {
    let over = emc_p2p::MAX_TX_GOSSIP_BYTES + 1024;
    let accept = MessageAcceptance::Accept;
    assert!(
        banned(Topic::Transactions, |i| vec![i as u8; over], accept, 60)
            .await
            .banned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_of_rejected_messages_is_banned() {
    let reject = MessageAcceptance::Reject;
    let small = |i: u32| i.to_be_bytes().to_vec();
    assert!(banned(Topic::Consensus, small, reject, 60).await.banned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_of_accepted_messages_at_the_limit_is_not_banned() {
    // The largest transaction message that fits, less gossipsub's envelope.
    let fits = emc_p2p::MAX_TX_GOSSIP_BYTES - 512;
    let accept = MessageAcceptance::Accept;
    let o = banned(Topic::Transactions, |i| vec![i as u8; fits], accept, 4).await;
    assert!(!o.banned, "an honest sender at the limit was banned");
    assert!(
        o.delivered > 10,
        "only {} messages got through",
        o.delivered
    );
}

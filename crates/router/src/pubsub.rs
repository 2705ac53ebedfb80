//! Real-time broadcast: publish/subscribe channels for apps and users.
//!
//! * At the gateway, `GET /pubsub/{channel}` upgrades to a WebSocket: every text or
//!   binary message the client sends is published on the channel, and every message
//!   published on it (by anyone, through any router of the mesh) is delivered as a
//!   JSON text frame `{"channel", "from", "data", "at"}`. `POST /pubsub/{channel}`
//!   publishes its body once. Both need an API key (header, or `?key=` for browsers,
//!   which cannot set WebSocket headers); `from` is the key's account, so every
//!   message names a publisher who proved it.
//! * Between routers, publications travel on the mesh streams (`Msg::Publish`): a
//!   router delivers a publication to its subscribers and passes it to its other
//!   peers unless it has seen its id or its hop budget ([`MAX_HOPS`]) is spent.
//! * Bounds: [`MAX_MESSAGE`] bytes per message, [`MAX_CHANNELS`] channels with
//!   subscribers, [`MAX_SUBSCRIBERS`] per channel, and a queue of [`QUEUE`] messages
//!   per subscriber: a subscriber that falls further behind misses the oldest and is
//!   told how many. Fan-out per message is therefore at most the subscribers of one
//!   channel plus the mesh peers.

use alloy_primitives::{Address, B256};
use emc_protocol::wire::mesh::Publication;
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

pub const MAX_MESSAGE: usize = 64 * 1024;
pub const MAX_CHANNELS: usize = 4_096;
pub const MAX_SUBSCRIBERS: usize = 1_024;
pub const QUEUE: usize = 256;
pub const MAX_HOPS: u8 = 4;
const MAX_CHANNEL_NAME: usize = 128;
const SEEN: usize = 65_536;

#[derive(Default)]
pub struct PubSub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<Publication>>>>,
    seen: Mutex<(HashSet<B256>, VecDeque<B256>)>,
    /// The mesh peers' outgoing queues.
    peers: Mutex<Vec<(emc_p2p::Peer, mpsc::Sender<Publication>)>>,
}

/// Checks a channel name: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn check_channel(name: &str) -> Result<(), CallError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CallError::BadRequest(format!(
            "a channel name is 1 to {MAX_CHANNEL_NAME} of A-Z a-z 0-9 . _ : -"
        )))
    }
}

impl PubSub {
    /// A new subscription to `channel`.
    pub fn subscribe(
        &self,
        channel: &str,
    ) -> Result<broadcast::Receiver<Arc<Publication>>, CallError> {
        check_channel(channel)?;
        let mut chans = self.channels.lock();
        if let Some(tx) = chans.get(channel) {
            if tx.receiver_count() >= MAX_SUBSCRIBERS {
                return Err(CallError::Saturated(format!(
                    "channel {channel} has {MAX_SUBSCRIBERS} subscribers at this router"
                )));
            }
            return Ok(tx.subscribe());
        }
        if chans.len() >= MAX_CHANNELS {
            chans.retain(|_, tx| tx.receiver_count() > 0);
            if chans.len() >= MAX_CHANNELS {
                return Err(CallError::Saturated(format!(
                    "{MAX_CHANNELS} channels have subscribers at this router"
                )));
            }
        }
        let (tx, rx) = broadcast::channel(QUEUE);
        chans.insert(channel.to_string(), tx);
        Ok(rx)
    }

    /// Publishes a client's message: to local subscribers and every mesh peer.
    pub fn publish(&self, channel: &str, from: Address, data: Vec<u8>) -> Result<usize, CallError> {
        check_channel(channel)?;
        if data.len() > MAX_MESSAGE {
            return Err(CallError::TooLarge(format!(
                "a message is at most {MAX_MESSAGE} bytes"
            )));
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let p = Publication {
            id: B256::from(rand::random::<[u8; 32]>()),
            channel: channel.to_string(),
            from,
            data,
            at,
            hops: MAX_HOPS,
        };
        Ok(self.accept(p, None))
    }

    /// A publication from a mesh peer.
    pub fn from_peer(&self, p: Publication, peer: emc_p2p::Peer) {
        if check_channel(&p.channel).is_err() || p.data.len() > MAX_MESSAGE {
            return;
        }
        self.accept(p, Some(peer));
    }

    /// Delivers locally and passes on; returns the local subscribers reached.
    fn accept(&self, mut p: Publication, origin: Option<emc_p2p::Peer>) -> usize {
        {
            let mut seen = self.seen.lock();
            if !seen.0.insert(p.id) {
                return 0;
            }
            seen.1.push_back(p.id);
            if seen.1.len() > SEEN {
                if let Some(old) = seen.1.pop_front() {
                    seen.0.remove(&old);
                }
            }
        }
        if p.hops > 0 {
            p.hops -= 1;
            for (peer, tx) in self.peers.lock().iter() {
                if Some(*peer) != origin {
                    // A full queue drops the message for that peer (it is behind).
                    let _ = tx.try_send(p.clone());
                }
            }
        }
        match self.channels.lock().get(&p.channel) {
            Some(tx) => tx.send(Arc::new(p)).unwrap_or(0),
            None => 0,
        }
    }

    /// A mesh peer's queue of publications to send it.
    pub fn add_peer(&self, peer: emc_p2p::Peer) -> mpsc::Receiver<Publication> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut peers = self.peers.lock();
        peers.retain(|(p, _)| *p != peer);
        peers.push((peer, tx));
        rx
    }
}

/// A publication as a subscriber receives it.
pub fn to_json(p: &Publication) -> String {
    let data = match std::str::from_utf8(&p.data) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => {
            serde_json::Value::String(format!("0x{}", alloy_primitives::hex::encode(&p.data)))
        }
    };
    serde_json::json!({
        "channel": p.channel,
        "from": p.from,
        "data": data,
        "at": p.at,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_reach_subscribers_and_peers_once() {
        let ps = PubSub::default();
        let mut a = ps.subscribe("room").unwrap();
        let mut other = ps.subscribe("elsewhere").unwrap();
        let peer = libp2p::PeerId::random();
        let mut to_peer = ps.add_peer(peer);
        assert_eq!(
            ps.publish("room", Address::repeat_byte(1), b"hi".to_vec())
                .unwrap(),
            1
        );
        let got = a.try_recv().unwrap();
        assert_eq!(
            (got.data.as_slice(), got.from),
            (&b"hi"[..], Address::repeat_byte(1))
        );
        assert!(other.try_recv().is_err());
        let sent = to_peer.try_recv().unwrap();
        assert_eq!(sent.hops, MAX_HOPS - 1);
        // The same publication back from the peer is not delivered again.
        ps.from_peer(sent.clone(), peer);
        assert!(a.try_recv().is_err());
        // A new one from the peer is delivered, and not echoed back to it.
        let mut fresh = sent;
        fresh.id = B256::repeat_byte(9);
        ps.from_peer(fresh, peer);
        assert!(a.try_recv().is_ok());
        assert!(to_peer.try_recv().is_err());
    }

    #[test]
    fn bounds_are_enforced_with_reasons() {
        let ps = PubSub::default();
        assert_eq!(ps.subscribe("bad name").unwrap_err().status(), 400);
        assert_eq!(
            ps.publish("x", Address::ZERO, vec![0; MAX_MESSAGE + 1])
                .unwrap_err()
                .status(),
            413
        );
        let mut subs = Vec::new();
        for _ in 0..MAX_SUBSCRIBERS {
            subs.push(ps.subscribe("busy").unwrap());
        }
        assert_eq!(ps.subscribe("busy").unwrap_err().status(), 429);
        // A subscriber that falls behind by more than its queue is told it lagged.
        let mut slow = ps.subscribe("firehose").unwrap();
        for i in 0..(QUEUE + 10) {
            ps.publish("firehose", Address::ZERO, vec![i as u8])
                .unwrap();
        }
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
    }
}

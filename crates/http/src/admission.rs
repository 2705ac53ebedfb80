//! Connection counts: in all, and per client address. A [`Permit`] is one open
//! connection; it is given back when dropped (with the socket, which holds it).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The client's address holds its share.
    #[error("too many connections from {ip}: at most {max} at once; close some or reuse one")]
    Client { ip: IpAddr, max: usize },
    /// The listener holds its most connections.
    #[error("the server holds its most connections ({max}); retry in a moment")]
    Full { max: usize },
}

impl Refused {
    /// The HTTP status and its reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refused::Client { .. } => (429, "Too Many Requests"),
            Refused::Full { .. } => (503, "Service Unavailable"),
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<Counts>>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Arc::default(),
        }
    }

    /// Admits one connection from `ip`, or says why not. The client's share is checked
    /// first, so one address filling the listener is told it is the one over.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refused> {
        let mut c = self.counts.lock();
        let mine = c.by_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.max_per_ip {
            return Err(Refused::Client {
                ip,
                max: self.max_per_ip,
            });
        }
        if c.total >= self.max_total {
            return Err(Refused::Full {
                max: self.max_total,
            });
        }
        c.total += 1;
        *c.by_ip.entry(ip).or_default() += 1;
        Ok(Permit {
            ip,
            counts: self.counts.clone(),
        })
    }

    /// Connections open now: in all, and from `ip`.
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.lock();
        (c.total, c.by_ip.get(&ip).copied().unwrap_or(0))
    }
}

/// One admitted connection.
pub struct Permit {
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_share_and_everyone_the_total() {
        let a = Admission::new(3, 2);
        let (x, y, z): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
            "127.0.0.4".parse().unwrap(),
        );
        let p1 = a.admit(x).expect("first");
        let _p2 = a.admit(x).expect("second");
        assert_eq!(a.admit(x).err(), Some(Refused::Client { ip: x, max: 2 }));
        let _p3 = a.admit(y).expect("another address");
        assert_eq!(a.admit(z).err(), Some(Refused::Full { max: 3 }));
        drop(p1);
        assert_eq!(a.open(x), (2, 1));
        a.admit(z).expect("a slot came back");
        assert_eq!(Refused::Full { max: 3 }.status().0, 503);
        assert_eq!(Refused::Client { ip: x, max: 2 }.status().0, 429);
    }
}

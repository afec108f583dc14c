//! Each client address's request budget on the endpoints anyone may call without
//! credentials (`server.address_rate_limit`), so that one address cannot starve the others.
//!
//! Kept in this process, not in the store: a budget kept in the store would itself be state
//! an anonymous request makes the service hold, one entry per address, and IPv6 hands an
//! attacker as many addresses as it wants. Here the table is bounded: at most
//! [`MAX_ADDRESSES`] entries, about 5 MiB. A bucket whose theoretical arrival time has
//! passed is the same as no bucket (GCRA, [`RateLimit::charge`]), so dropping those loses
//! nothing; when every entry is still busy, a new address shares one overflow bucket with
//! every other newcomer, so a flood from many addresses cannot push out the budgets of the
//! addresses already known. IPv6 addresses count by their /64, the block one host is given.
//! Each replica keeps its own table: behind a load balancer of N replicas an address gets
//! up to N budgets.

use crate::store::RateLimit;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses the table holds at once.
pub const MAX_ADDRESSES: usize = 65_536;
const SHARDS: usize = 16;

/// Who a budget belongs to: an IPv4 address, an IPv6 /64, or every newcomer while the table
/// is full of busy buckets.
#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum Owner {
    V4(u32),
    V6(u64),
    Overflow,
}

impl Owner {
    fn of(ip: IpAddr) -> Owner {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Owner::V4(u32::from(v4)),
            IpAddr::V6(v6) => Owner::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

pub struct AddressBudget {
    limit: RateLimit,
    /// Each shard maps an owner to its bucket's theoretical arrival time.
    shards: Vec<Mutex<HashMap<Owner, Instant>>>,
    len: AtomicUsize,
}

impl AddressBudget {
    pub fn new(limit: RateLimit) -> Self {
        AddressBudget {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            len: AtomicUsize::new(0),
        }
    }

    /// Charges one request from `ip` at `now`: none when admitted, or how long to wait.
    pub fn charge(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut owner = Owner::of(ip);
        let mut shard = self.shard(owner);
        if !shard.contains_key(&owner) && self.len.load(Ordering::Relaxed) >= MAX_ADDRESSES {
            // Full: first forget this shard's idle buckets, then, if still full, share.
            let before = shard.len();
            shard.retain(|_, tat| *tat > now);
            self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
            if self.len.load(Ordering::Relaxed) >= MAX_ADDRESSES {
                drop(shard);
                owner = Owner::Overflow;
                shard = self.shard(owner);
            }
        }
        let tat = shard.get(&owner).copied();
        match self.limit.charge(tat, now) {
            Ok(next) => {
                if shard.insert(owner, next).is_none() {
                    self.len.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Err(wait) => Some(wait),
        }
    }

    /// Forgets every bucket that has refilled: run now and then, so the table holds only
    /// the addresses seen lately.
    pub fn purge(&self, now: Instant) {
        for shard in &self.shards {
            let mut shard = shard.lock().expect("budget lock");
            let before = shard.len();
            shard.retain(|_, tat| *tat > now);
            self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn shard(&self, owner: Owner) -> std::sync::MutexGuard<'_, HashMap<Owner, Instant>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let index = BuildHasherDefault::<DefaultHasher>::default().hash_one(owner) as usize;
        self.shards[index % SHARDS].lock().expect("budget lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(burst: u32) -> AddressBudget {
        AddressBudget::new(RateLimit {
            interval: Duration::from_secs(1),
            burst,
        })
    }

    #[test]
    fn an_address_gets_its_burst_then_waits_while_another_is_untouched() {
        let budget = budget(2);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(budget.charge(a, now), None);
        }
        let wait = budget.charge(a, now).unwrap();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert_eq!(budget.charge(b, now), None);
        assert_eq!(budget.charge(a, now + wait), None);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_budget() {
        let budget = budget(1);
        let now = Instant::now();
        assert_eq!(budget.charge("2001:db8::1".parse().unwrap(), now), None);
        assert!(budget.charge("2001:db8::2".parse().unwrap(), now).is_some());
        assert_eq!(budget.charge("2001:db8:0:1::1".parse().unwrap(), now), None);
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(budget.charge("192.0.2.9".parse().unwrap(), now), None);
        assert!(budget
            .charge("::ffff:192.0.2.9".parse().unwrap(), now)
            .is_some());
    }

    #[test]
    fn the_table_is_bounded_and_known_addresses_keep_their_budget() {
        let budget = budget(2);
        let now = Instant::now();
        let known: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(budget.charge(known, now), None);
        for i in 0..(MAX_ADDRESSES as u32 + 1000) {
            budget.charge(IpAddr::V4((0x0a00_0000 + i).into()), now);
        }
        assert!(budget.len() <= MAX_ADDRESSES + 1);
        // The known address still has its own bucket: one more request, then it waits.
        assert_eq!(budget.charge(known, now), None);
        assert!(budget.charge(known, now).is_some());
        // Once the buckets refill, they are forgotten.
        budget.purge(now + Duration::from_secs(5));
        assert_eq!(budget.len(), 0);
    }
}

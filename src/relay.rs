//! POP-before-SMTP: a table of recently authenticated client addresses, and the submission
//! policy that decides whether an SMTP session may relay (RFC 6409 §3.3 mentions it as a
//! legacy way to authorize submission; SMTP AUTH, RFC 4954, supersedes it).
//!
//! A successful POP3 (or IMAP, or any) login from address X lets SMTP sessions from X relay
//! for a while. The table keys on the address in canonical form: an IPv4-mapped IPv6 address
//! (`::ffff:192.0.2.1`) is the IPv4 address it maps, so a dual-stack listener and an IPv4 one
//! agree. Every successful login refreshes the entry; entries expire a fixed time-to-live
//! after the last login (default [`DEFAULT_TTL`], 30 minutes, the common practice of
//! pop-before-smtp, DRAC and poprelayd); the table holds at most `capacity` addresses and
//! evicts the oldest login first.
//!
//! # Time
//! `now` is always an argument: a [`Duration`] since an epoch the caller picks and keeps for
//! the table's lifetime. Use the UNIX epoch (`SystemTime::now().duration_since(UNIX_EPOCH)`)
//! when the entries are shared with other processes; any monotonic clock works for a table
//! private to one process. An entry recorded at `t` is valid for lookups at every `now` with
//! `now < t + ttl`; at exactly `t + ttl` it has expired. No clock is read here, so the crate
//! stays `no_std`.
//!
//! # Several servers
//! When POP3 and SMTP run on different hosts, or several of each sit behind a balancer, the
//! table lives in a store the deployment already runs; this type is then the reference for
//! the semantics (and a cache, if wanted). The POP3 server's login event
//! (`pop3::Event::LoggedIn`, carrying the identity) is the feed: the application that drives
//! the machine knows the peer address and writes one row per login.
//! - **Redis** (or memcached): on each login `SET relay:<ip> <user> EX <ttl-seconds>` (a
//!   new `SET` refreshes the expiry); at SMTP time `EXISTS relay:<ip>`. Redis expires the key
//!   at exactly the TTL, matching the boundary above, and needs no purge job.
//! - **SQL**: a table `relay(ip TEXT PRIMARY KEY, username TEXT, expires_at TIMESTAMP)`; on
//!   login an upsert (`INSERT ... ON CONFLICT (ip) DO UPDATE SET expires_at = now + ttl,
//!   username = ...`), at SMTP time `SELECT 1 FROM relay WHERE ip = ? AND expires_at > now`,
//!   and a periodic `DELETE FROM relay WHERE expires_at <= now` as the purge.
//!
//! In both, write the key as [`canonical`]`(ip).to_string()` so that mapped and plain IPv4
//! forms meet in one row.
//!
//! # Policy
//! [`SubmissionPolicy::decide`] combines the table with what the SMTP server knows: a session
//! that authenticated by SASL (including EXTERNAL with a TLS client certificate) may relay; so
//! may a client whose address is in the table; so may one the application allows for its own
//! reasons (its own networks, say). Everything else is refused.
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use core::time::Duration;
//! use mailwire::relay::{RelayTable, RelayConfig, SubmissionPolicy, RelayDecision};
//!
//! let mut table = RelayTable::new(RelayConfig::default());
//! let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
//! let login = Duration::from_secs(1_700_000_000);
//! table.record(ip, login, Some("alice"));
//! let policy = SubmissionPolicy::default();
//! assert_eq!(policy.decide(&table, None, ip, login + Duration::from_secs(60), false), RelayDecision::RecentLogin);
//! assert_eq!(policy.decide(&table, None, ip, login + Duration::from_secs(1800), false), RelayDecision::Denied);
//! ```

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use core::net::IpAddr;
use core::time::Duration;

use crate::sasl::Identity;

/// The default time-to-live of an entry: 30 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
/// The default most addresses kept.
pub const DEFAULT_CAPACITY: usize = 65_536;
/// The longest user name kept with an entry, in octets; longer names are cut at a character
/// boundary.
pub const MAX_USER_LEN: usize = 255;

/// The address in the form the table keys on: an IPv4-mapped IPv6 address becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        IpAddr::V4(_) => ip,
    }
}

/// Settings of a [`RelayTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// How long after the last login an address may relay.
    pub ttl: Duration,
    /// The most addresses kept; beyond it the oldest login is evicted. Zero keeps nothing.
    pub capacity: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { ttl: DEFAULT_TTL, capacity: DEFAULT_CAPACITY }
    }
}

/// One address's last login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEntry {
    /// When the address last logged in (the caller's epoch).
    pub last_login: Duration,
    /// Who logged in last, if known (for the log, not for the decision).
    pub user: Option<String>,
}

/// Addresses recently authenticated, with expiry and a capacity bound.
#[derive(Debug, Clone)]
pub struct RelayTable {
    config: RelayConfig,
    entries: BTreeMap<IpAddr, RelayEntry>,
    /// The same entries ordered by login time, for purge and eviction.
    by_time: BTreeSet<(Duration, IpAddr)>,
}

impl Default for RelayTable {
    fn default() -> Self {
        Self::new(RelayConfig::default())
    }
}

fn bounded_user(user: &str) -> String {
    let mut end = user.len().min(MAX_USER_LEN);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    String::from(user.get(..end).unwrap_or_default())
}

impl RelayTable {
    /// An empty table.
    pub fn new(config: RelayConfig) -> Self {
        Self { config, entries: BTreeMap::new(), by_time: BTreeSet::new() }
    }

    /// The settings.
    pub fn config(&self) -> RelayConfig {
        self.config
    }

    /// Number of addresses held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expired(&self, last_login: Duration, now: Duration) -> bool {
        match last_login.checked_add(self.config.ttl) {
            Some(end) => now >= end,
            None => false,
        }
    }

    /// Records a successful login from `ip` at `now`, refreshing an existing entry (its time
    /// never moves backwards; the user is replaced when one is given). A new address in a
    /// full table evicts the one with the oldest login.
    pub fn record(&mut self, ip: IpAddr, now: Duration, user: Option<&str>) {
        let ip = canonical(ip);
        if let Some(entry) = self.entries.get_mut(&ip) {
            self.by_time.remove(&(entry.last_login, ip));
            entry.last_login = entry.last_login.max(now);
            if let Some(user) = user {
                entry.user = Some(bounded_user(user));
            }
            self.by_time.insert((entry.last_login, ip));
            return;
        }
        if self.config.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.config.capacity {
            let Some((_, oldest)) = self.by_time.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        self.entries.insert(ip, RelayEntry { last_login: now, user: user.map(bounded_user) });
        self.by_time.insert((now, ip));
    }

    /// The live entry for `ip` at `now`, if it logged in less than the TTL ago.
    pub fn lookup(&self, ip: IpAddr, now: Duration) -> Option<&RelayEntry> {
        self.entries.get(&canonical(ip)).filter(|entry| !self.expired(entry.last_login, now))
    }

    /// Whether `ip` may relay at `now` by POP-before-SMTP.
    pub fn contains(&self, ip: IpAddr, now: Duration) -> bool {
        self.lookup(ip, now).is_some()
    }

    /// Forgets `ip` (a logout hook, an administrator's action).
    pub fn remove(&mut self, ip: IpAddr) -> Option<RelayEntry> {
        let ip = canonical(ip);
        let entry = self.entries.remove(&ip)?;
        self.by_time.remove(&(entry.last_login, ip));
        Some(entry)
    }

    /// Removes every entry expired at `now`; returns how many went.
    pub fn purge(&mut self, now: Duration) -> usize {
        let mut removed = 0;
        while let Some(&(last_login, ip)) = self.by_time.first() {
            if !self.expired(last_login, now) {
                break;
            }
            self.by_time.pop_first();
            self.entries.remove(&ip);
            removed += 1;
        }
        removed
    }

    /// Every entry, expired ones not yet purged included, by address.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &RelayEntry)> {
        self.entries.iter()
    }
}

/// Why a session may or may not relay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayDecision {
    /// The session authenticated by SASL (RFC 4954), EXTERNAL with a client certificate
    /// included; carries the identity it acts as.
    Authenticated(String),
    /// The client's address logged in recently (POP-before-SMTP).
    RecentLogin,
    /// The application allows it for its own reasons.
    Application,
    /// None of the above: refuse relaying (SMTP `554 5.7.1` or `530 5.7.0`).
    Denied,
}

impl RelayDecision {
    /// Whether relaying is allowed.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Self::Denied)
    }
}

/// Which grounds the submission policy accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmissionPolicy {
    /// Accept a recent login from the same address (POP-before-SMTP). On by default.
    pub pop_before_smtp: bool,
}

impl Default for SubmissionPolicy {
    fn default() -> Self {
        Self { pop_before_smtp: true }
    }
}

impl SubmissionPolicy {
    /// Decides whether a session from `client` may relay at `now`: by its SASL `identity`,
    /// by a recent login in `table`, or because the `application_allows` it, checked in that
    /// order.
    pub fn decide(
        &self,
        table: &RelayTable,
        identity: Option<&Identity>,
        client: IpAddr,
        now: Duration,
        application_allows: bool,
    ) -> RelayDecision {
        if let Some(identity) = identity {
            return RelayDecision::Authenticated(String::from(identity.acting_as()));
        }
        if self.pop_before_smtp && table.contains(client, now) {
            return RelayDecision::RecentLogin;
        }
        if application_allows {
            return RelayDecision::Application;
        }
        RelayDecision::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const T0: Duration = Duration::from_secs(1_000_000);

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn relay_expiry_exactly_at_the_boundary() {
        let mut table = RelayTable::default();
        table.record(v4(1), T0, Some("alice"));
        assert!(table.contains(v4(1), T0));
        assert!(table.contains(v4(1), T0 + DEFAULT_TTL - Duration::from_nanos(1)));
        assert!(!table.contains(v4(1), T0 + DEFAULT_TTL));
        assert_eq!(table.purge(T0 + DEFAULT_TTL - Duration::from_nanos(1)), 0);
        assert_eq!(table.purge(T0 + DEFAULT_TTL), 1);
        assert!(table.is_empty());
        // A clock behind the login still sees the entry.
        table.record(v4(1), T0, None);
        assert!(table.contains(v4(1), T0 - secs(5)));
    }

    #[test]
    fn relay_refresh_extends_and_keeps_user() {
        let mut table = RelayTable::new(RelayConfig { ttl: secs(900), capacity: 10 });
        table.record(v4(1), T0, Some("alice"));
        table.record(v4(1), T0 + secs(600), None);
        assert!(table.contains(v4(1), T0 + secs(1200)));
        assert_eq!(table.lookup(v4(1), T0 + secs(1200)).unwrap().user.as_deref(), Some("alice"));
        assert!(!table.contains(v4(1), T0 + secs(1500)));
        // An older login never moves the time backwards.
        table.record(v4(1), T0, Some("bob"));
        let entry = table.lookup(v4(1), T0 + secs(1400)).unwrap();
        assert_eq!(entry.last_login, T0 + secs(600));
        assert_eq!(entry.user.as_deref(), Some("bob"));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn relay_purge_removes_only_expired() {
        let mut table = RelayTable::new(RelayConfig { ttl: secs(100), capacity: 10 });
        for i in 0..5u8 {
            table.record(v4(i), T0 + secs(u64::from(i) * 10), None);
        }
        assert_eq!(table.purge(T0 + secs(125)), 3);
        assert_eq!(table.len(), 2);
        assert!(table.lookup(v4(3), T0 + secs(125)).is_some());
        assert!(table.lookup(v4(2), T0 + secs(125)).is_none());
        assert_eq!(table.purge(T0 + secs(10_000)), 2);
        assert_eq!(table.purge(T0 + secs(10_000)), 0);
    }

    #[test]
    fn relay_capacity_evicts_oldest() {
        let mut table = RelayTable::new(RelayConfig { ttl: DEFAULT_TTL, capacity: 3 });
        table.record(v4(1), T0 + secs(1), None);
        table.record(v4(2), T0 + secs(2), None);
        table.record(v4(3), T0 + secs(3), None);
        table.record(v4(1), T0 + secs(4), None); // refresh: 2 is now the oldest
        table.record(v4(4), T0 + secs(5), None);
        assert_eq!(table.len(), 3);
        assert!(!table.contains(v4(2), T0 + secs(6)));
        for i in [1, 3, 4] {
            assert!(table.contains(v4(i), T0 + secs(6)), "{i}");
        }
        let mut none = RelayTable::new(RelayConfig { ttl: DEFAULT_TTL, capacity: 0 });
        none.record(v4(1), T0, None);
        assert!(none.is_empty());
    }

    #[test]
    fn relay_v4_mapped_v6_is_v4() {
        let mut table = RelayTable::default();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        table.record(mapped, T0, None);
        assert!(table.contains(v4(1), T0));
        assert_eq!(table.iter().next().unwrap().0, &v4(1));
        table.record(v4(1), T0 + secs(1), None);
        assert_eq!(table.len(), 1);
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        table.record(v6, T0, None);
        assert!(table.contains(v6, T0));
        assert!(!table.contains(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)), T0));
        // IPv4-compatible (deprecated ::a.b.c.d) is not mapped: kept as IPv6.
        let compat = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_compatible());
        assert_eq!(canonical(compat), compat);
        assert!(table.remove(mapped).is_some());
        assert!(!table.contains(v4(1), T0));
    }

    #[test]
    fn relay_user_names_are_bounded() {
        let mut table = RelayTable::default();
        let long = "é".repeat(300);
        table.record(v4(1), T0, Some(&long));
        let user = table.lookup(v4(1), T0).unwrap().user.clone().unwrap();
        assert!(user.len() <= MAX_USER_LEN && user.chars().all(|c| c == 'é'));
    }

    #[test]
    fn relay_ttl_overflow_never_expires() {
        let mut table = RelayTable::new(RelayConfig { ttl: Duration::MAX, capacity: 2 });
        table.record(v4(1), T0, None);
        assert!(table.contains(v4(1), Duration::MAX));
        assert_eq!(table.purge(Duration::MAX), 0);
    }

    #[test]
    fn submission_policy_grounds() {
        let mut table = RelayTable::default();
        table.record(v4(1), T0, None);
        let policy = SubmissionPolicy::default();
        let identity = Identity { authcid: "alice".into(), authzid: None };
        assert_eq!(
            policy.decide(&table, Some(&identity), v4(9), T0, false),
            RelayDecision::Authenticated("alice".into())
        );
        assert_eq!(policy.decide(&table, None, v4(1), T0, false), RelayDecision::RecentLogin);
        assert_eq!(policy.decide(&table, None, v4(9), T0, true), RelayDecision::Application);
        assert_eq!(policy.decide(&table, None, v4(9), T0, false), RelayDecision::Denied);
        assert!(!RelayDecision::Denied.is_allowed());
        let strict = SubmissionPolicy { pop_before_smtp: false };
        assert_eq!(strict.decide(&table, None, v4(1), T0, false), RelayDecision::Denied);
        assert!(strict.decide(&table, None, v4(1), T0, true).is_allowed());
    }

    proptest::proptest! {
        #[test]
        fn relay_table_matches_a_model(ops in proptest::collection::vec((0u8..6, 0u64..50, proptest::bool::ANY), 0..60)) {
            let ttl = secs(20);
            let mut table = RelayTable::new(RelayConfig { ttl, capacity: 4 });
            let mut now = T0;
            for (ip, step, purge) in ops {
                now += secs(step % 7);
                if purge { table.purge(now); } else { table.record(v4(ip), now, None); }
                proptest::prop_assert!(table.len() <= 4);
                proptest::prop_assert_eq!(table.by_time.len(), table.entries.len());
                for (addr, entry) in table.iter() {
                    proptest::prop_assert_eq!(table.contains(*addr, now), now < entry.last_login + ttl);
                }
            }
        }
    }
}

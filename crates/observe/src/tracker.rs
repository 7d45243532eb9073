//! What the observer knows about each LAN client, and which events that knowledge calls for.
//!
//! Pure: neighbour updates and ticks come in with `now`, events go out. Writing is rare on
//! purpose (flash wear): a client that stays present costs nothing until its observation nears
//! expiry; a MAC change is reported at once; a client must be gone for `expireAfter` before
//! the expired fact is emitted, and one that comes back before that costs nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use routerd_model::net::Ipv4Net;
use routerd_model::{Event, GoDuration, Timestamp};

pub const OBSERVED: &str = "routerd.client.ipv4.observed";
pub const EXPIRED: &str = "routerd.client.ipv4.expired";

/// A ClientObserver resolved against its EventGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct ObserverConfig {
    pub name: String,
    pub group: String,
    pub node: String,
    pub interfaces: Vec<String>,
    pub prefixes: Vec<Ipv4Net>,
    pub ttl: GoDuration,
    pub expire_after: GoDuration,
    pub payload: BTreeMap<String, String>,
}

impl ObserverConfig {
    /// How long before expiry an observation is refreshed: min(max(ttl/2, 30 s), 60 s), or
    /// ttl/2 for TTLs up to 30 s (Go HEAD's discovery rule).
    pub fn refresh_before(&self) -> GoDuration {
        let half = GoDuration::from_nanos(self.ttl.as_nanos() / 2);
        if self.ttl <= GoDuration::from_secs(30) {
            half
        } else {
            half.max(GoDuration::from_secs(30))
                .min(GoDuration::from_secs(60))
        }
    }

    /// A stable key per (node, address); the event id adds the observation time.
    pub fn dedupe_key(&self, ip: Ipv4Addr) -> String {
        format!("observer:{}:{}_32", self.node, ip)
    }
}

/// A neighbour entry as the kernel reports it, already mapped to an interface name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
    pub ifname: String,
    pub state: NeighbourState,
    /// NTF_PROXY: a proxy entry this router answers for.
    pub proxy: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourState {
    /// REACHABLE, STALE, DELAY or PROBE: the client is there.
    Present,
    /// FAILED, or the entry was deleted.
    Gone,
    /// PERMANENT or NOARP: configured, not observed.
    Static,
    /// INCOMPLETE or NONE: no news.
    Unknown,
}

#[derive(Debug, Clone)]
struct Client {
    mac: String,
    ifname: String,
    /// Expiry of the last observed event we (or a previous run) wrote.
    expires_at: Timestamp,
    gone_since: Option<Timestamp>,
    /// Learnt from the store at start: not yet confirmed by the kernel.
    restored: bool,
}

#[derive(Debug)]
pub struct Tracker {
    cfg: ObserverConfig,
    clients: HashMap<Ipv4Addr, Client>,
    /// The router's own addresses.
    own: HashSet<Ipv4Addr>,
    /// Addresses captured by active local claims (the self-capture guard).
    captured: HashSet<Ipv4Addr>,
    /// The earliest time [`Tracker::tick`] has work, kept current without scanning all clients
    /// on every neighbour update (a router may track thousands).
    due: Option<Timestamp>,
}

pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Tracker {
    pub fn new(cfg: ObserverConfig) -> Tracker {
        Tracker {
            cfg,
            clients: HashMap::new(),
            own: HashSet::new(),
            captured: HashSet::new(),
            due: None,
        }
    }

    pub fn config(&self) -> &ObserverConfig {
        &self.cfg
    }

    pub fn set_own_addresses(&mut self, own: HashSet<Ipv4Addr>) {
        self.own = own;
    }

    pub fn set_captured(&mut self, captured: HashSet<Ipv4Addr>) {
        self.captured = captured;
    }

    pub fn tracked(&self) -> usize {
        self.clients.len()
    }

    /// Rebuilds the view from this node's stored events (newest per address wins): a client
    /// whose observation is still valid gets no new event when the kernel confirms it.
    pub fn restore<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>, now: Timestamp) {
        let mut newest: HashMap<Ipv4Addr, &Event> = HashMap::new();
        for e in events {
            if e.source_node != self.cfg.node
                || (e.event_type != OBSERVED && e.event_type != EXPIRED)
            {
                continue;
            }
            let Some(ip) = e
                .payload
                .get("address")
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse().ok())
            else {
                continue;
            };
            // Stored times are whole seconds. Within one second an observation is newer than an
            // expiry: a client expires at least `expireAfter` after it was last seen.
            let rank = |e: &Event| (e.observed_at, e.event_type == OBSERVED, e.id.clone());
            let keep = newest.get(&ip).is_none_or(|n| rank(e) > rank(n));
            if keep {
                newest.insert(ip, e);
            }
        }
        for (ip, e) in newest {
            if e.event_type == OBSERVED && !e.is_expired(now) {
                self.clients.insert(
                    ip,
                    Client {
                        mac: e.payload.get("mac").cloned().unwrap_or_default(),
                        ifname: e.payload.get("interface").cloned().unwrap_or_default(),
                        expires_at: e.expires_at,
                        gone_since: None,
                        restored: true,
                    },
                );
            }
        }
    }

    /// Before a resynchronising dump: every present client must be confirmed again.
    pub fn begin_resync(&mut self) {
        for c in self.clients.values_mut().filter(|c| c.gone_since.is_none()) {
            c.restored = true;
        }
    }

    /// After a full dump: restored clients the kernel did not report are gone from now.
    pub fn dump_done(&mut self, now: Timestamp) {
        for c in self.clients.values_mut().filter(|c| c.restored) {
            c.restored = false;
            c.gone_since.get_or_insert(now);
        }
        self.recompute_due();
    }

    fn wanted(&self, n: &Neighbour) -> bool {
        !n.proxy
            && n.state != NeighbourState::Static
            && self.cfg.interfaces.contains(&n.ifname)
            && self.cfg.prefixes.iter().any(|p| p.contains(n.ip))
            && !self.own.contains(&n.ip)
            && !self.captured.contains(&n.ip)
    }

    /// One neighbour update; returns the events it calls for (usually none).
    pub fn neighbour(&mut self, n: &Neighbour, now: Timestamp) -> Vec<Event> {
        if !self.wanted(n) {
            return vec![];
        }
        match n.state {
            NeighbourState::Present => {
                let Some(mac) = n.mac.as_ref().map(mac_text) else {
                    return vec![];
                };
                let stale = match self.clients.get_mut(&n.ip) {
                    Some(c) => {
                        c.restored = false;
                        c.gone_since = None;
                        // New news: another device, or the last observation ran out.
                        c.mac != mac || now >= c.expires_at
                    }
                    None => true,
                };
                let out = if stale {
                    vec![self.observe(n.ip, mac, n.ifname.clone(), now)]
                } else {
                    vec![]
                };
                self.note_due(n.ip);
                out
            }
            NeighbourState::Gone => {
                if let Some(c) = self.clients.get_mut(&n.ip) {
                    c.gone_since.get_or_insert(now);
                }
                self.note_due(n.ip);
                vec![]
            }
            NeighbourState::Static | NeighbourState::Unknown => vec![],
        }
    }

    /// An interface went away: its clients are gone from now.
    pub fn interface_gone(&mut self, ifname: &str, now: Timestamp) {
        for c in self.clients.values_mut().filter(|c| c.ifname == ifname) {
            c.gone_since.get_or_insert(now);
        }
        self.recompute_due();
    }

    /// Time-driven events: TTL refreshes for present clients, expiry for gone ones. Cheap when
    /// nothing is due.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Event> {
        if self.due.is_none_or(|d| now < d) {
            return vec![];
        }
        let refresh_before = self.cfg.refresh_before();
        let mut refresh = vec![];
        let mut expired = vec![];
        for (ip, c) in &self.clients {
            match c.gone_since {
                Some(since) if now >= since.add(self.cfg.expire_after) => expired.push(*ip),
                None if !c.restored && now.add(refresh_before) >= c.expires_at => refresh.push(*ip),
                _ => {}
            }
        }
        let mut out = vec![];
        for ip in refresh {
            let c = &self.clients[&ip];
            let (mac, ifname) = (c.mac.clone(), c.ifname.clone());
            out.push(self.observe(ip, mac, ifname, now));
        }
        for ip in expired {
            let c = self.clients.remove(&ip).expect("listed above");
            out.push(self.event(EXPIRED, ip, &c.mac, &c.ifname, now, true));
        }
        self.recompute_due();
        out
    }

    /// When [`Tracker::tick`] next has something to do.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.due
    }

    fn due_of(&self, c: &Client) -> Option<Timestamp> {
        match c.gone_since {
            Some(since) => Some(since.add(self.cfg.expire_after)),
            None if !c.restored => Some(c.expires_at.add(GoDuration::from_nanos(
                -self.cfg.refresh_before().as_nanos(),
            ))),
            None => None,
        }
    }

    fn recompute_due(&mut self) {
        self.due = self.clients.values().filter_map(|c| self.due_of(c)).min();
    }

    /// A client's deadline can only move the tracker's earlier between full recomputations.
    fn note_due(&mut self, ip: Ipv4Addr) {
        if let Some(d) = self.clients.get(&ip).and_then(|c| self.due_of(c)) {
            self.due = Some(self.due.map_or(d, |cur| cur.min(d)));
        }
    }

    fn observe(&mut self, ip: Ipv4Addr, mac: String, ifname: String, now: Timestamp) -> Event {
        let e = self.event(OBSERVED, ip, &mac, &ifname, now, false);
        self.clients.insert(
            ip,
            Client {
                mac,
                ifname,
                expires_at: e.expires_at,
                gone_since: None,
                restored: false,
            },
        );
        e
    }

    fn event(
        &self,
        kind: &str,
        ip: Ipv4Addr,
        mac: &str,
        ifname: &str,
        now: Timestamp,
        expired: bool,
    ) -> Event {
        // Whole seconds: what the store keeps, so a restart compares like with like.
        let now = now.truncate_to_secs();
        let subject = format!("{ip}/32");
        let mut payload = self.cfg.payload.clone();
        payload.insert("address".into(), subject.clone());
        if !mac.is_empty() {
            payload.insert("mac".into(), mac.into());
        }
        if !ifname.is_empty() {
            payload.insert("interface".into(), ifname.into());
        }
        let key = self.cfg.dedupe_key(ip);
        let nanos = now.unix_nanos();
        Event {
            id: if expired {
                format!("{key}:expired:{nanos}")
            } else {
                format!("{key}:{nanos}")
            },
            group: self.cfg.group.clone(),
            source_node: self.cfg.node.clone(),
            event_type: kind.into(),
            subject,
            dedupe_key: key,
            payload,
            observed_at: now,
            expires_at: now.add(self.cfg.ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_780_142_400;
    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];

    fn cfg() -> ObserverConfig {
        ObserverConfig {
            name: "lan".into(),
            group: "cloudedge".into(),
            node: "onprem-router".into(),
            interfaces: vec!["br-lan".into()],
            prefixes: vec![routerd_model::net::parse_ipv4_prefix("10.88.60.0/24").unwrap()],
            ttl: GoDuration::from_secs(300),
            expire_after: GoDuration::from_secs(900),
            payload: [("domain".to_string(), "cloudedge-same-subnet".to_string())].into(),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix(T0 + s)
    }

    fn n(ip: &str, state: NeighbourState) -> Neighbour {
        Neighbour {
            ip: ip.parse().unwrap(),
            mac: Some(MAC),
            ifname: "br-lan".into(),
            state,
            proxy: false,
        }
    }

    #[test]
    fn first_sight_emits_one_observed_event_with_the_documented_shape() {
        let mut t = Tracker::new(cfg());
        let ev = t.neighbour(&n("10.88.60.9", NeighbourState::Present), at(0));
        assert_eq!(ev.len(), 1);
        let e = &ev[0];
        assert_eq!(e.event_type, OBSERVED);
        assert_eq!(e.subject, "10.88.60.9/32");
        assert_eq!(e.dedupe_key, "observer:onprem-router:10.88.60.9_32");
        assert_eq!(
            e.id,
            format!(
                "observer:onprem-router:10.88.60.9_32:{}",
                at(0).unix_nanos()
            )
        );
        assert_eq!(e.payload["mac"], "02:00:00:00:00:09");
        assert_eq!(e.payload["interface"], "br-lan");
        assert_eq!(e.payload["address"], "10.88.60.9/32");
        assert_eq!(e.payload["domain"], "cloudedge-same-subnet");
        assert_eq!(e.expires_at, at(300));
        assert_eq!(e.source_node, "onprem-router");
    }

    #[test]
    fn updates_while_present_cost_nothing_until_the_refresh_point() {
        let mut t = Tracker::new(cfg());
        t.neighbour(&n("10.88.60.9", NeighbourState::Present), at(0));
        for s in 1..240 {
            assert!(t
                .neighbour(&n("10.88.60.9", NeighbourState::Present), at(s))
                .is_empty());
            assert!(t.tick(at(s)).is_empty(), "at {s}");
        }
        // refresh_before = min(max(150, 30), 60) = 60 s before expiry.
        assert_eq!(t.next_due(), Some(at(240)));
        let refreshed = t.tick(at(240));
        assert_eq!(refreshed.len(), 1);
        assert_eq!(refreshed[0].expires_at, at(540));
    }

    #[test]
    fn a_changed_mac_is_a_new_observation_at_once() {
        let mut t = Tracker::new(cfg());
        t.neighbour(&n("10.88.60.9", NeighbourState::Present), at(0));
        let mut other = n("10.88.60.9", NeighbourState::Present);
        other.mac = Some([0x02, 0, 0, 0, 0, 0x0a]);
        let ev = t.neighbour(&other, at(5));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].payload["mac"], "02:00:00:00:00:0a");
    }

    #[test]
    fn gone_for_expire_after_emits_expired_and_back_before_costs_nothing() {
        let mut t = Tracker::new(cfg());
        t.neighbour(&n("10.88.60.9", NeighbourState::Present), at(0));
        t.neighbour(&n("10.88.60.9", NeighbourState::Gone), at(10));
        assert!(t.tick(at(909)).is_empty());
        // Back before expireAfter: nothing, and the expiry clock stops.
        assert!(t
            .neighbour(&n("10.88.60.9", NeighbourState::Present), at(100))
            .is_empty());
        t.neighbour(&n("10.88.60.9", NeighbourState::Gone), at(200));
        assert!(t.tick(at(1099)).iter().all(|e| e.event_type != EXPIRED));
        let ev = t.tick(at(1100));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, EXPIRED);
        assert!(ev[0].id.contains(":expired:"));
        assert_eq!(t.tracked(), 0);
        assert!(t.tick(at(5000)).is_empty(), "expired only once");
    }

    #[test]
    fn ignores_what_is_not_a_lan_client_observation() {
        let mut t = Tracker::new(cfg());
        t.set_own_addresses(["10.88.60.1".parse().unwrap()].into());
        t.set_captured(["10.88.60.7".parse().unwrap()].into());
        let mut proxy = n("10.88.60.5", NeighbourState::Present);
        proxy.proxy = true;
        let mut other_if = n("10.88.60.6", NeighbourState::Present);
        other_if.ifname = "wan".into();
        for ignored in [
            proxy,
            other_if,
            n("10.88.60.2", NeighbourState::Static),
            n("10.88.60.3", NeighbourState::Unknown),
            n("10.88.61.9", NeighbourState::Present),
            n("10.88.60.1", NeighbourState::Present),
            n("10.88.60.7", NeighbourState::Present),
        ] {
            assert!(t.neighbour(&ignored, at(0)).is_empty(), "{ignored:?}");
        }
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn restart_rebuilds_from_the_store_without_duplicates() {
        let mut first = Tracker::new(cfg());
        let stored = first.neighbour(&n("10.88.60.9", NeighbourState::Present), at(0));
        let gone_meanwhile = first.neighbour(&n("10.88.60.10", NeighbourState::Present), at(0));

        let mut t = Tracker::new(cfg());
        t.restore(stored.iter().chain(&gone_meanwhile), at(30));
        assert!(
            t.neighbour(&n("10.88.60.9", NeighbourState::Present), at(30))
                .is_empty(),
            "still valid: no new event"
        );
        t.dump_done(at(30));
        let ev = t.tick(at(930));
        let expired: Vec<_> = ev.iter().filter(|e| e.event_type == EXPIRED).collect();
        assert_eq!(
            expired.len(),
            1,
            "the client missing from the table expires after expireAfter"
        );
        assert_eq!(expired[0].subject, "10.88.60.10/32");
        assert!(
            ev.iter()
                .any(|e| e.event_type == OBSERVED && e.subject == "10.88.60.9/32"),
            "the present one is refreshed"
        );
    }

    #[test]
    fn an_observation_in_the_same_second_as_an_expiry_wins_at_restart() {
        let mut first = Tracker::new(cfg());
        first.neighbour(&n("10.88.60.9", NeighbourState::Present), at(0));
        first.neighbour(&n("10.88.60.9", NeighbourState::Gone), at(1));
        let expired = first.tick(at(901));
        let back = first.neighbour(&n("10.88.60.9", NeighbourState::Present), at(901));
        assert_eq!((expired.len(), back.len()), (1, 1));
        let mut t = Tracker::new(cfg());
        t.restore(expired.iter().chain(&back), at(902));
        assert!(t
            .neighbour(&n("10.88.60.9", NeighbourState::Present), at(902))
            .is_empty());
    }

    #[test]
    fn refresh_before_follows_the_ttl() {
        let mut c = cfg();
        c.ttl = GoDuration::from_secs(10);
        assert_eq!(c.refresh_before(), GoDuration::from_secs(5));
        c.ttl = GoDuration::from_secs(80);
        assert_eq!(c.refresh_before(), GoDuration::from_secs(40));
        c.ttl = GoDuration::from_secs(3600);
        assert_eq!(c.refresh_before(), GoDuration::from_secs(60));
    }
}

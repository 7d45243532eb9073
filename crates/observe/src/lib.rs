//! The LAN client observer: the kernel's IPv4 neighbour table → observed/expired events.
//!
//! A tour:
//! - [`tracker`]: pure state per client and the events it calls for (first sight, MAC change,
//!   TTL refresh, expiry after `expireAfter`); no I/O, `now` passed in.
//! - [`netlink`]: dumps and notifications over rtnetlink, translated for the tracker.
//! - [`Observer`]: the loop that joins them and writes events to the state database, where
//!   the outbox picks them up like emitted ones.
//!
//! No polling of /proc and no packet capture: the kernel tells us when a neighbour changes.

pub mod netlink;
pub mod tracker;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::StreamExt;
use routerd_model::net::parse_ipv4_prefix;
use routerd_model::resource::pick;
use routerd_model::{duration::parse_optional, Event, GoDuration, Router};
use routerd_state::{EventQuery, Store};
use tokio::sync::watch;

pub use tracker::{ObserverConfig, Tracker};

pub const DEFAULT_TTL: GoDuration = GoDuration::from_secs(300);
pub const DEFAULT_EXPIRE_AFTER: GoDuration = GoDuration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("ClientObserver {0}: spec.groupRef names no EventGroup")]
    NoGroup(String),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error(transparent)]
    State(#[from] routerd_state::StateError),
}

/// Every ClientObserver of the config, resolved against its EventGroup (the config is valid).
pub fn observers(router: &Router) -> Result<Vec<ObserverConfig>, ObserveError> {
    router
        .specs(pick::client_observer)
        .map(|(r, s)| {
            let (_, group) = router
                .specs(pick::event_group)
                .find(|(g, _)| g.name() == s.group_ref.trim())
                .ok_or_else(|| ObserveError::NoGroup(r.name().into()))?;
            Ok(ObserverConfig {
                name: r.name().into(),
                group: s.group_ref.trim().into(),
                node: group.node_name.trim().into(),
                interfaces: s.interfaces.iter().map(|i| i.trim().to_string()).collect(),
                prefixes: s
                    .prefixes
                    .iter()
                    .filter_map(|p| parse_ipv4_prefix(p.trim()).ok())
                    .collect(),
                ttl: parse_optional(&s.ttl).ok().flatten().unwrap_or(DEFAULT_TTL),
                expire_after: parse_optional(&s.expire_after)
                    .ok()
                    .flatten()
                    .unwrap_or(DEFAULT_EXPIRE_AFTER),
                payload: s.payload.clone(),
            })
        })
        .collect()
}

/// One observer: its tracker and its own database connection.
pub struct Observer {
    tracker: Tracker,
    store: Store,
    written: usize,
}

impl Observer {
    /// Restores the tracker from this node's stored events.
    pub fn new(cfg: ObserverConfig, store: Store) -> Result<Observer, ObserveError> {
        let now = store.now();
        let events = store.list_events(&EventQuery {
            group: Some(&cfg.group),
            include_expired: false,
            now,
            recorded_since: None,
        })?;
        let mut tracker = Tracker::new(cfg);
        tracker.restore(events.iter().map(|s| &s.event), now);
        Ok(Observer {
            tracker,
            store,
            written: 0,
        })
    }

    /// Events written since start (for tests and the bench).
    pub fn written(&self) -> usize {
        self.written
    }

    pub fn tracked(&self) -> usize {
        self.tracker.tracked()
    }

    fn write(&mut self, events: Vec<Event>) {
        for e in events {
            match self.store.record_event(&e) {
                Ok(_) => {
                    self.written += 1;
                    tracing::info!(observer = %self.tracker.config().name, event = %e.event_type, subject = %e.subject,
                        mac = e.payload.get("mac").map(String::as_str).unwrap_or("-"), "client");
                }
                Err(err) => {
                    tracing::error!(observer = %self.tracker.config().name, "record {}: {err}", e.id)
                }
            }
        }
    }

    /// Re-reads the addresses captured by active local claims (the self-capture guard).
    fn refresh_captured(&mut self) {
        let now = self.store.now();
        match self.store.list_parts() {
            Ok(parts) => {
                let captured: HashSet<Ipv4Addr> =
                    routerd_dynamic::capture::captured_addresses(&parts, now)
                        .into_keys()
                        .filter_map(|ip| match ip {
                            IpAddr::V4(v4) => Some(v4),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                self.tracker.set_captured(captured);
            }
            Err(e) => tracing::warn!("read dynamic parts for the self-capture guard: {e}"),
        }
    }

    async fn initial_dump(
        &mut self,
        handle: &rtnetlink::Handle,
    ) -> Result<(netlink::Links, HashSet<Ipv4Addr>), ObserveError> {
        self.refresh_captured();
        let (links, own, neighbours) = netlink::dump(handle)
            .await
            .map_err(|e| ObserveError::Netlink(e.to_string()))?;
        self.tracker.set_own_addresses(own.clone());
        let now = self.store.now();
        for m in &neighbours {
            if let Some(n) = netlink::neighbour(m, &links, false) {
                let events = self.tracker.neighbour(&n, now);
                self.write(events);
            }
        }
        self.tracker.dump_done(now);
        let events = self.tracker.tick(now);
        self.write(events);
        Ok((links, own))
    }

    /// One pass for `serve --once`: dump the table, write what it calls for, return.
    pub async fn run_once(&mut self) -> Result<(), ObserveError> {
        let (handle, _messages) =
            netlink::connect().map_err(|e| ObserveError::Netlink(e.to_string()))?;
        self.initial_dump(&handle).await?;
        Ok(())
    }

    /// Follows the kernel until `stop` turns true. The kernel drops notifications when a burst
    /// overflows the socket (and rtnetlink does not report it), so the observer also
    /// resynchronises from a fresh dump every [`netlink::RESYNC_INTERVAL`], and at once when the
    /// socket closes.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), ObserveError> {
        loop {
            match self.follow(&mut stop).await {
                Ok(true) => return Ok(()),
                Ok(false) => self.tracker.begin_resync(),
                Err(e) => {
                    tracing::warn!(observer = %self.tracker.config().name, "{e}; resynchronising from a fresh dump");
                    self.tracker.begin_resync();
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Ok(true) when stopped, Ok(false) when it is time to resynchronise.
    async fn follow(&mut self, stop: &mut watch::Receiver<bool>) -> Result<bool, ObserveError> {
        let (handle, mut messages) =
            netlink::connect().map_err(|e| ObserveError::Netlink(e.to_string()))?;
        let (mut links, mut own) = self.initial_dump(&handle).await?;
        let mut refreshed_at = self.store.now();
        let resync_at = tokio::time::Instant::now() + netlink::RESYNC_INTERVAL;
        loop {
            let now = self.store.now();
            let wait = self
                .tracker
                .next_due()
                .map(|due| due.since(now).to_std())
                .unwrap_or(netlink::MAX_IDLE)
                .min(netlink::MAX_IDLE);
            tokio::select! {
                msg = messages.next() => {
                    let Some((msg, _)) = msg else {
                        return Err(ObserveError::Netlink("the notification socket closed".into()));
                    };
                    let now = self.store.now();
                    match netlink::translate(msg, &mut links) {
                        Some(netlink::KernelEvent::Neighbour(n)) => {
                            let events = self.tracker.neighbour(&n, now);
                            self.write(events);
                        }
                        Some(netlink::KernelEvent::LinkGone { name, .. }) => self.tracker.interface_gone(&name, now),
                        Some(netlink::KernelEvent::LinkUp { name, .. }) => tracing::debug!(%name, "link"),
                        Some(netlink::KernelEvent::OwnAddress(ip)) => {
                            own.insert(ip);
                            self.tracker.set_own_addresses(own.clone());
                        }
                        Some(netlink::KernelEvent::OwnAddressGone(ip)) => {
                            own.remove(&ip);
                            self.tracker.set_own_addresses(own.clone());
                        }
                        None => {}
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::time::sleep_until(resync_at) => return Ok(false),
                _ = stop.changed() => return Ok(true),
            }
            let now = self.store.now();
            if now.since(refreshed_at) >= GoDuration::from_secs(netlink::MAX_IDLE.as_secs() as i64)
            {
                self.refresh_captured();
                refreshed_at = now;
            }
            let events = self.tracker.tick(now);
            self.write(events);
        }
    }
}

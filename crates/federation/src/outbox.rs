//! The outbox: push this node's unexpired events to every peer that wants them, signed afresh
//! per attempt, and record each (event, peer) result.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Bytes;
use tokio::sync::watch;

use routerd_model::{gojson, signature, Event};
use routerd_state::{DeliveryQuery, EventQuery, PushResult, Store};

use crate::group::{read_secret, GroupConfig, Peer};
use crate::http::{self, Endpoint};
use crate::FederationError;

pub const MAX_ATTEMPTS: i64 = 3;
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// 200 ms after attempt 1, 400 ms after attempt 2, doubling up to 5 s.
pub fn backoff(attempt: i64) -> Duration {
    let mut d = BASE_BACKOFF;
    for _ in 1..attempt {
        d *= 2;
        if d >= MAX_BACKOFF {
            return MAX_BACKOFF;
        }
    }
    d.min(MAX_BACKOFF)
}

/// Which pairs a pass works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every unexpired pair that is not delivered (or whose TTL was refreshed): the 10 s pass.
    All,
    /// Only pairs never attempted and TTL refreshes: the pass right after a local write, so a
    /// peer that is down is not retried faster than every 10 s.
    New,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassStats {
    pub delivered: usize,
    pub failed: usize,
}

pub struct Outbox {
    group: GroupConfig,
    store: Arc<Mutex<Store>>,
    secret: Option<Vec<u8>>,
    /// Peers already told about clock skew (logged once per peer, not per attempt).
    skew_logged: HashSet<String>,
    /// When the last pass started: a `New` pass looks only at events recorded since.
    last_pass: Option<routerd_model::Timestamp>,
}

impl Outbox {
    pub fn new(group: GroupConfig, store: Arc<Mutex<Store>>) -> Outbox {
        Outbox {
            group,
            store,
            secret: None,
            skew_logged: HashSet::new(),
            last_pass: None,
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The work of a pass: (event, peer) pairs to push, in event order.
    fn work(&mut self, scope: Scope) -> Result<Vec<(Event, Peer)>, FederationError> {
        if self.group.peers.is_empty() {
            return Ok(vec![]);
        }
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let now = store.now();
        // A wake-up pass looks at what was recorded since the previous pass (a second of slack:
        // stored times are whole seconds); the regular pass looks at everything.
        let since = match scope {
            Scope::New => self
                .last_pass
                .map(|t| t.add(routerd_model::GoDuration::from_secs(-1))),
            Scope::All => None,
        };
        self.last_pass = Some(now);
        let events = store.list_events(&EventQuery {
            group: Some(&self.group.group),
            include_expired: false,
            now,
            recorded_since: since,
        })?;
        let rows: HashMap<(String, String), routerd_state::Delivery> = if since.is_some() {
            let mut rows = HashMap::new();
            for e in &events {
                for d in store.list_deliveries(&DeliveryQuery {
                    event_id: Some(&e.event.id),
                    ..Default::default()
                })? {
                    rows.insert((d.event_id.clone(), d.peer.clone()), d);
                }
            }
            rows
        } else {
            store
                .list_deliveries(&DeliveryQuery {
                    group: Some(&self.group.group),
                    ..Default::default()
                })?
                .into_iter()
                .map(|d| ((d.event_id.clone(), d.peer.clone()), d))
                .collect()
        };
        let mut work = Vec::new();
        // The no-reforward guard: only events this node originated are pushed.
        for e in events
            .into_iter()
            .map(|s| s.event)
            .filter(|e| e.source_node == self.group.node_name)
        {
            for peer in self
                .group
                .peers
                .iter()
                .filter(|p| p.wants(&e.event_type, &e.subject))
            {
                let row = rows.get(&(e.id.clone(), peer.node_name.clone()));
                let refreshed = |d: &routerd_state::Delivery| {
                    !e.expires_at.is_zero()
                        && !d.event_expires_at.is_zero()
                        && d.event_expires_at < e.expires_at
                };
                let todo = match (row, scope) {
                    (None, _) => true,
                    (Some(d), _) if d.status == "delivered" => refreshed(d),
                    (Some(d), Scope::New) => d.status == "pending" && d.attempts == 0,
                    (Some(_), Scope::All) => true,
                };
                if todo {
                    work.push((e.clone(), peer.clone()));
                }
            }
        }
        Ok(work)
    }

    /// One pass. The secret is read only when there is something to push.
    pub async fn pass(
        &mut self,
        scope: Scope,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<PassStats, FederationError> {
        let work = self.work(scope)?;
        let mut stats = PassStats::default();
        if work.is_empty() {
            return Ok(stats);
        }
        if self.secret.is_none() {
            self.secret = Some(read_secret(&self.group.group, &self.group.secret_file)?);
        }
        for (event, peer) in work {
            if *shutdown.borrow() {
                break;
            }
            self.store().enqueue_delivery(&event.id, &peer.node_name)?;
            let result = self.push(&event, &peer, shutdown).await;
            let recorded = match &result {
                Ok(attempts) => {
                    stats.delivered += 1;
                    PushResult::Delivered {
                        attempts: *attempts,
                        event_expires_at: event.expires_at,
                    }
                }
                Err((attempts, error)) => {
                    stats.failed += 1;
                    PushResult::Failed {
                        attempts: *attempts,
                        error,
                    }
                }
            };
            self.store()
                .record_push(&event.id, &peer.node_name, &recorded)?;
        }
        Ok(stats)
    }

    /// Up to [`MAX_ATTEMPTS`] attempts with backoff; Ok(attempts) or Err((attempts, last error)).
    async fn push(
        &mut self,
        event: &Event,
        peer: &Peer,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<i64, (i64, String)> {
        let endpoint = Endpoint::parse(&peer.endpoint).map_err(|e| (0, e))?;
        let body = Bytes::from(gojson::to_vec(event).expect("an event always encodes"));
        let secret = self.secret.clone().unwrap_or_default();
        let mut last_error = String::new();
        let mut attempt = 0;
        while attempt < MAX_ATTEMPTS {
            attempt += 1;
            // A fresh timestamp and signature for every attempt.
            let ts = self.store().now().unix_secs();
            let headers = [
                ("x-routerd-timestamp", ts.to_string()),
                ("x-routerd-signature", signature::sign(&secret, ts, &body)),
            ];
            match http::post(&endpoint, "/v1/events", &headers, body.clone()).await {
                Ok((code, _)) if (200..300).contains(&code) => {
                    tracing::debug!(group = %self.group.group, peer = %peer.node_name, id = %event.id, "delivered");
                    return Ok(attempt);
                }
                Ok((403, answer)) if answer.starts_with(b"stale timestamp") => {
                    last_error = "peer returned HTTP 403: stale timestamp (the two clocks differ by more than the replay window)".into();
                    if self.skew_logged.insert(peer.node_name.clone()) {
                        tracing::warn!(
                            group = %self.group.group, peer = %peer.node_name,
                            "peer refuses our timestamps as stale: this clock and the peer's differ by more than the replay window (routers without a real-time clock need NTP before federating)"
                        );
                    }
                }
                Ok((code, _)) => last_error = format!("peer returned HTTP {code}"),
                Err(e) => last_error = e,
            }
            if attempt < MAX_ATTEMPTS && !*shutdown.borrow() {
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        tracing::warn!(group = %self.group.group, peer = %peer.node_name, id = %event.id, error = %last_error, "push failed");
        Err((attempt, last_error))
    }
}

/// Applies the group's retention once; returns how many events were pruned.
pub fn prune_pass(group: &GroupConfig, store: &Mutex<Store>) -> Result<usize, FederationError> {
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    let now = store.now();
    let pruned = store.prune_events(&group.group, group.max_age, group.max_events, now, false)?;
    if !pruned.is_empty() {
        tracing::info!(group = %group.group, pruned = pruned.len(), "retention pruned events");
    }
    Ok(pruned.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_matches_go() {
        let ms: Vec<u128> = (1..=7).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}

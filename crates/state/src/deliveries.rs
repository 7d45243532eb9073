//! `event_deliveries`: the outbox, one row per (event, peer).

use routerd_model::Timestamp;
use rusqlite::{params, Row};

use crate::{Result, StateError, Store};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivery {
    pub event_id: String,
    pub peer: String,
    pub status: String,
    pub attempts: i64,
    pub last_attempt_at: Timestamp,
    pub last_error: String,
    pub delivered_at: Timestamp,
    /// The event's expiry when it was last delivered; a later expiry means a TTL refresh.
    pub event_expires_at: Timestamp,
}

/// The result of one push pass for one pair.
#[derive(Debug, Clone, PartialEq)]
pub enum PushResult<'a> {
    Delivered {
        attempts: i64,
        event_expires_at: Timestamp,
    },
    Failed {
        attempts: i64,
        error: &'a str,
    },
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery<'a> {
    /// Only deliveries of events of this group (deliveries of pruned events drop out).
    pub group: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub peer: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Per (group, peer) aggregates for `routerctl federation deliveries summary`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliverySummary {
    pub group: String,
    pub peer: String,
    pub events: i64,
    pub delivered: i64,
    pub stale_ttl: i64,
    pub failed: i64,
    pub pending: i64,
    pub max_lag_seconds: i64,
    pub min_expires_in_seconds: i64,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        event_id: r.get(0)?,
        peer: r.get(1)?,
        status: r.get(2)?,
        attempts: r.get(3)?,
        last_attempt_at: Timestamp::from_unix_opt(r.get(4)?),
        last_error: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        delivered_at: Timestamp::from_unix_opt(r.get(6)?),
        event_expires_at: Timestamp::from_unix_opt(r.get(7)?),
    })
}

const COLUMNS: &str = "d.event_id, d.peer, d.status, d.attempts, d.last_attempt_at, d.last_error, d.delivered_at, d.event_expires_at";

impl Store {
    /// Ensures a `pending` row exists for the pair; an existing row is left alone.
    pub fn enqueue_delivery(&self, event_id: &str, peer: &str) -> Result<()> {
        if event_id.trim().is_empty() {
            return Err(StateError::Invalid("delivery event id is required".into()));
        }
        if peer.trim().is_empty() {
            return Err(StateError::Invalid("delivery peer is required".into()));
        }
        self.conn.execute(
            "INSERT INTO event_deliveries (event_id, peer, status, attempts) VALUES (?1, ?2, 'pending', 0)
             ON CONFLICT(event_id, peer) DO NOTHING",
            params![event_id, peer],
        )?;
        Ok(())
    }

    /// Records a push pass: status, attempts of this pass, `last_attempt_at` = now.
    pub fn record_push(&self, event_id: &str, peer: &str, result: &PushResult<'_>) -> Result<()> {
        let now = self.now().unix_secs();
        let (status, attempts, error, delivered, expires) = match result {
            PushResult::Delivered {
                attempts,
                event_expires_at,
            } => (
                "delivered",
                *attempts,
                "",
                Some(now),
                event_expires_at.unix_secs_opt(),
            ),
            PushResult::Failed { attempts, error } => ("failed", *attempts, *error, None, None),
        };
        self.conn.execute(
            "UPDATE event_deliveries SET status = ?3, attempts = ?4, last_attempt_at = ?5, last_error = ?6,
                    delivered_at = ?7, event_expires_at = COALESCE(?8, event_expires_at)
             WHERE event_id = ?1 AND peer = ?2",
            params![event_id, peer, status, attempts, now, error, delivered, expires],
        )?;
        Ok(())
    }

    /// Deliveries ordered by event id, then peer.
    pub fn list_deliveries(&self, q: &DeliveryQuery<'_>) -> Result<Vec<Delivery>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM event_deliveries d
             WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM federation_events e WHERE e.id = d.event_id AND e.group_name = ?1))
               AND (?2 IS NULL OR d.event_id = ?2) AND (?3 IS NULL OR d.peer = ?3) AND (?4 IS NULL OR d.status = ?4)
             ORDER BY d.event_id, d.peer"
        ))?;
        let rows = stmt.query_map(params![q.group, q.event_id, q.peer, q.status], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Aggregates per (group, peer) over deliveries joined to their events.
    pub fn delivery_summary(
        &self,
        group: Option<&str>,
        peer: Option<&str>,
        event_type: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<DeliverySummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.group_name, d.peer, COUNT(*),
                    SUM(d.status = 'delivered'),
                    SUM(d.status = 'delivered' AND e.expires_at > 0 AND d.event_expires_at IS NOT NULL AND d.event_expires_at < e.expires_at),
                    SUM(d.status = 'failed'), SUM(d.status = 'pending'),
                    MAX(COALESCE(d.delivered_at, ?5) - e.observed_at),
                    MIN(CASE WHEN e.expires_at > 0 THEN e.expires_at - ?5 END)
             FROM event_deliveries d JOIN federation_events e ON e.id = d.event_id
             WHERE (?1 IS NULL OR e.group_name = ?1) AND (?2 IS NULL OR d.peer = ?2) AND (?3 IS NULL OR e.type = ?3)
               AND (?4 OR e.expires_at IS NULL OR e.expires_at = 0 OR e.expires_at >= ?5)
             GROUP BY e.group_name, d.peer ORDER BY e.group_name, d.peer",
        )?;
        let rows = stmt.query_map(
            params![group, peer, event_type, include_expired, now.unix_secs()],
            |r| {
                Ok(DeliverySummary {
                    group: r.get(0)?,
                    peer: r.get(1)?,
                    events: r.get(2)?,
                    delivered: r.get(3)?,
                    stale_ttl: r.get(4)?,
                    failed: r.get(5)?,
                    pending: r.get(6)?,
                    max_lag_seconds: r.get::<_, Option<i64>>(7)?.unwrap_or(0).max(0),
                    min_expires_in_seconds: r.get::<_, Option<i64>>(8)?.unwrap_or(0),
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::store_at;
    use routerd_model::{Event, GoDuration};

    const T0: i64 = 1_780_142_400;

    fn record(store: &Store, id: &str, expires: i64) {
        let mut e = Event {
            id: id.into(),
            group: "cloudedge".into(),
            event_type: "t".into(),
            observed_at: Timestamp::from_unix(T0),
            expires_at: Timestamp::from_unix(expires),
            ..Default::default()
        };
        e.normalize().unwrap();
        store.record_event(&e).unwrap();
    }

    #[test]
    fn enqueue_is_idempotent_and_push_results_are_recorded() {
        let (_d, store, clock) = store_at(T0);
        record(&store, "e1", T0 + 60);
        store.enqueue_delivery("e1", "cloud").unwrap();
        store.enqueue_delivery("e1", "cloud").unwrap();
        let q = DeliveryQuery::default();
        assert_eq!(store.list_deliveries(&q).unwrap().len(), 1);
        assert_eq!(store.list_deliveries(&q).unwrap()[0].status, "pending");

        clock.advance(GoDuration::from_secs(2));
        store
            .record_push(
                "e1",
                "cloud",
                &PushResult::Failed {
                    attempts: 3,
                    error: "peer returned HTTP 500",
                },
            )
            .unwrap();
        let d = &store.list_deliveries(&q).unwrap()[0];
        assert_eq!(
            (d.status.as_str(), d.attempts, d.last_error.as_str()),
            ("failed", 3, "peer returned HTTP 500")
        );
        assert_eq!(d.last_attempt_at, Timestamp::from_unix(T0 + 2));

        store
            .record_push(
                "e1",
                "cloud",
                &PushResult::Delivered {
                    attempts: 1,
                    event_expires_at: Timestamp::from_unix(T0 + 60),
                },
            )
            .unwrap();
        let d = &store.list_deliveries(&q).unwrap()[0];
        assert_eq!(
            (d.status.as_str(), d.last_error.as_str()),
            ("delivered", "")
        );
        assert_eq!(d.delivered_at, Timestamp::from_unix(T0 + 2));
        assert_eq!(d.event_expires_at, Timestamp::from_unix(T0 + 60));

        let s = store
            .delivery_summary(None, None, None, false, Timestamp::from_unix(T0 + 2))
            .unwrap();
        assert_eq!(
            (
                s[0].events,
                s[0].delivered,
                s[0].max_lag_seconds,
                s[0].min_expires_in_seconds
            ),
            (1, 1, 2, 58)
        );
        // A TTL refresh makes the delivered row stale.
        record(&store, "e1", T0 + 120);
        let s = store
            .delivery_summary(None, None, None, false, Timestamp::from_unix(T0 + 2))
            .unwrap();
        assert_eq!(s[0].stale_ttl, 1);
    }

    #[test]
    fn filters_and_errors() {
        let (_d, store, _) = store_at(T0);
        record(&store, "e1", T0 + 60);
        store.enqueue_delivery("e1", "a").unwrap();
        store.enqueue_delivery("gone", "a").unwrap();
        assert_eq!(
            store
                .list_deliveries(&DeliveryQuery {
                    group: Some("cloudedge"),
                    ..Default::default()
                })
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .list_deliveries(&DeliveryQuery {
                    status: Some("delivered"),
                    ..Default::default()
                })
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            store.enqueue_delivery("", "a").unwrap_err().to_string(),
            "delivery event id is required"
        );
        assert_eq!(
            store.enqueue_delivery("x", " ").unwrap_err().to_string(),
            "delivery peer is required"
        );
    }
}

//! `federation_events`: the local copy of every event, emitted here or received.

use std::collections::BTreeMap;

use routerd_model::{Event, GoDuration, Timestamp};
use rusqlite::{params, OptionalExtension, Row};

use crate::{Result, StateError, Store};

/// An event as stored, with the time this node recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub recorded_at: Timestamp,
}

/// Whether recording added a row or met an existing id (in the same group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery<'a> {
    /// Only this group; `None` for all.
    pub group: Option<&'a str>,
    /// Keep events whose `expiresAt` has passed.
    pub include_expired: bool,
    /// The time expiry is judged at.
    pub now: Timestamp,
    /// Only events recorded (or re-recorded) at or after this time.
    pub recorded_since: Option<Timestamp>,
}

const COLUMNS: &str =
    "id, group_name, source_node, type, subject, dedupe_key, payload, observed_at, expires_at, recorded_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let payload_text: Option<String> = row.get(6)?;
    let payload = match payload_text.as_deref() {
        None | Some("") | Some("{}") => BTreeMap::new(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
        })?,
    };
    Ok(StoredEvent {
        event: Event {
            id: row.get(0)?,
            group: row.get(1)?,
            source_node: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            event_type: row.get(3)?,
            subject: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
            dedupe_key: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
            payload,
            observed_at: Timestamp::from_unix_opt(row.get(7)?),
            expires_at: Timestamp::from_unix_opt(row.get(8)?),
        },
        recorded_at: Timestamp::from_unix_opt(row.get(9)?),
    })
}

impl Store {
    /// Records an event (Go HEAD semantics): a new id is inserted; a known id keeps its type,
    /// subject and payload but takes the later observedAt/expiresAt (a TTL refresh), the new
    /// sourceNode and a new recordedAt. Times are stored in whole seconds.
    pub fn record_event(&self, event: &Event) -> Result<Recorded> {
        for (value, what) in [
            (&event.id, "id"),
            (&event.group, "group"),
            (&event.event_type, "type"),
        ] {
            if value.trim().is_empty() {
                return Err(StateError::Invalid(format!(
                    "federation event {what} is required"
                )));
            }
        }
        let now = self.now();
        let observed = if event.observed_at.is_zero() {
            now
        } else {
            event.observed_at
        };
        let dedupe = if event.dedupe_key.is_empty() {
            &event.id
        } else {
            &event.dedupe_key
        };
        let payload = if event.payload.is_empty() {
            "{}".to_string()
        } else {
            serde_json::to_string(&event.payload).expect("a string map always encodes")
        };
        let tx = self.write_tx()?;
        let duplicate: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM federation_events WHERE id = ?1 AND group_name = ?2",
            params![event.id, event.group],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO federation_events (id, group_name, source_node, type, subject, dedupe_key, payload,
                                            observed_at, expires_at, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(id) DO UPDATE SET
                 source_node = excluded.source_node,
                 observed_at = MAX(excluded.observed_at, observed_at),
                 expires_at  = MAX(excluded.expires_at, expires_at),
                 recorded_at = excluded.recorded_at",
            params![
                event.id,
                event.group,
                event.source_node,
                event.event_type,
                event.subject,
                dedupe,
                payload,
                observed.unix_secs(),
                event.expires_at.unix_secs_opt(),
                now.unix_secs(),
            ],
        )?;
        tx.commit()?;
        Ok(if duplicate {
            Recorded::Duplicate
        } else {
            Recorded::New
        })
    }

    /// One event by id, expired or not.
    pub fn get_event(&self, id: &str) -> Result<Option<StoredEvent>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM federation_events WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Events ordered by `observed_at` ascending (then id, for a stable order).
    pub fn list_events(&self, q: &EventQuery<'_>) -> Result<Vec<StoredEvent>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM federation_events WHERE (?1 IS NULL OR group_name = ?1)
             AND (?3 OR expires_at IS NULL OR expires_at = 0 OR expires_at >= ?2)
             AND (?4 IS NULL OR recorded_at >= ?4)
             ORDER BY observed_at, id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                q.group,
                q.now.unix_secs(),
                q.include_expired,
                q.recorded_since.map(|t| t.unix_secs())
            ],
            from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Number of stored events of a group, expired ones included.
    pub fn count_events(&self, group: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM federation_events WHERE group_name = ?1",
            [group],
            |r| r.get(0),
        )?)
    }

    /// Applies a group's retention: events older than `max_age` (strictly), then all but the
    /// newest `max_events`. Delivery and subscription-run rows of pruned events go with them
    /// (Go keeps those forever). Returns the pruned ids; with `dry_run` nothing is deleted.
    pub fn prune_events(
        &self,
        group: &str,
        max_age: Option<GoDuration>,
        max_events: i64,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        if let Some(age) = max_age.filter(|a| a.is_positive()) {
            let cutoff = now.unix_secs() - age.whole_secs();
            let mut stmt = self.conn.prepare_cached(
                "SELECT id FROM federation_events WHERE group_name = ?1 AND observed_at < ?2 ORDER BY observed_at, id",
            )?;
            ids.extend(
                stmt.query_map(params![group, cutoff], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
        }
        if max_events > 0 {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id FROM federation_events WHERE group_name = ?1
                 ORDER BY observed_at DESC, id DESC LIMIT -1 OFFSET ?2",
            )?;
            let over: Vec<String> = stmt
                .query_map(params![group, max_events], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in over.into_iter().rev() {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if dry_run || ids.is_empty() {
            return Ok(ids);
        }
        let tx = self.write_tx()?;
        for id in &ids {
            tx.execute("DELETE FROM event_deliveries WHERE event_id = ?1", [id])?;
            tx.execute(
                "DELETE FROM event_subscription_runs WHERE event_id = ?1",
                [id],
            )?;
            tx.execute(
                "DELETE FROM federation_events WHERE id = ?1 AND group_name = ?2",
                params![id, group],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::store_at;

    const T0: i64 = 1_780_142_400;

    fn ev(id: &str, observed: i64, expires: i64) -> Event {
        let mut e = Event {
            id: id.into(),
            group: "cloudedge".into(),
            event_type: "routerd.client.ipv4.observed".into(),
            subject: "10.88.60.9/32".into(),
            payload: [("address".to_string(), "10.88.60.9/32".to_string())].into(),
            observed_at: Timestamp::from_unix(observed),
            expires_at: if expires == 0 {
                Timestamp::ZERO
            } else {
                Timestamp::from_unix(expires)
            },
            ..Default::default()
        };
        e.normalize().unwrap();
        e
    }

    #[test]
    fn records_and_reads_back_an_event() {
        let (_d, store, _) = store_at(T0);
        assert_eq!(
            store.record_event(&ev("evt-1", T0, T0 + 1800)).unwrap(),
            Recorded::New
        );
        let got = store.get_event("evt-1").unwrap().unwrap();
        assert_eq!(got.event, ev("evt-1", T0, T0 + 1800));
        assert_eq!(got.recorded_at, Timestamp::from_unix(T0));
    }

    #[test]
    fn a_duplicate_id_refreshes_ttl_but_keeps_the_fact() {
        let (_d, store, _) = store_at(T0);
        store.record_event(&ev("evt-1", T0, T0 + 60)).unwrap();
        let mut again = ev("evt-1", T0 + 30, T0 + 90);
        again.payload.insert("address".into(), "10.0.0.1/32".into());
        again.source_node = "other".into();
        assert_eq!(store.record_event(&again).unwrap(), Recorded::Duplicate);
        let got = store.get_event("evt-1").unwrap().unwrap().event;
        assert_eq!(got.expires_at, Timestamp::from_unix(T0 + 90));
        assert_eq!(got.observed_at, Timestamp::from_unix(T0 + 30));
        assert_eq!(got.payload["address"], "10.88.60.9/32");
        assert_eq!(got.source_node, "other");
        // An older re-send never shortens the TTL.
        store.record_event(&ev("evt-1", T0, T0 + 60)).unwrap();
        assert_eq!(
            store.get_event("evt-1").unwrap().unwrap().event.expires_at,
            Timestamp::from_unix(T0 + 90)
        );
    }

    #[test]
    fn duplicate_detection_is_per_group() {
        let (_d, store, _) = store_at(T0);
        store.record_event(&ev("evt-1", T0, 0)).unwrap();
        let mut other = ev("evt-1", T0, 0);
        other.group = "other".into();
        assert_eq!(store.record_event(&other).unwrap(), Recorded::New);
    }

    #[test]
    fn rejects_events_without_identity() {
        let (_d, store, _) = store_at(T0);
        let err = store
            .record_event(&Event {
                id: "x".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "federation event group is required");
        assert!(store
            .list_events(&EventQuery {
                include_expired: true,
                ..Default::default()
            })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn listing_hides_expired_events_at_second_granularity() {
        let (_d, store, _) = store_at(T0);
        store.record_event(&ev("a", T0, T0 + 10)).unwrap();
        store.record_event(&ev("b", T0 - 5, 0)).unwrap();
        let at = |s: i64| EventQuery {
            group: Some("cloudedge"),
            include_expired: false,
            now: Timestamp::from_unix(s),
            recorded_since: None,
        };
        let ids = |q| {
            store
                .list_events(&q)
                .unwrap()
                .into_iter()
                .map(|e| e.event.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(at(T0 + 10)), ["b", "a"]);
        assert_eq!(ids(at(T0 + 11)), ["b"]);
        assert_eq!(
            ids(EventQuery {
                include_expired: true,
                ..at(T0 + 11)
            }),
            ["b", "a"]
        );
        assert!(ids(EventQuery {
            group: Some("nope"),
            ..at(T0)
        })
        .is_empty());
    }

    #[test]
    fn listing_can_start_from_a_recording_time() {
        let (_d, store, clock) = store_at(T0);
        store.record_event(&ev("old", T0, 0)).unwrap();
        clock.advance(GoDuration::from_secs(10));
        store.record_event(&ev("new", T0, 0)).unwrap();
        let q = EventQuery {
            include_expired: true,
            recorded_since: Some(Timestamp::from_unix(T0 + 5)),
            ..Default::default()
        };
        let ids: Vec<_> = store
            .list_events(&q)
            .unwrap()
            .into_iter()
            .map(|e| e.event.id)
            .collect();
        assert_eq!(ids, ["new"]);
        // Re-recording (a TTL refresh) counts as recent.
        store.record_event(&ev("old", T0, T0 + 600)).unwrap();
        assert_eq!(store.list_events(&q).unwrap().len(), 2);
    }

    #[test]
    fn prune_by_age_and_count_takes_dependent_rows_along() {
        let (_d, store, _) = store_at(T0);
        for (i, age) in [100, 50, 10, 0].iter().enumerate() {
            store
                .record_event(&ev(&format!("e{i}"), T0 - age, 0))
                .unwrap();
        }
        store
            .start_runs(
                "EventSubscription/s",
                "p",
                &[("e0", "cloudedge")],
                Timestamp::from_unix(T0),
            )
            .unwrap();
        let now = Timestamp::from_unix(T0);
        // e1 is exactly 50 s old and survives a 50 s maxAge.
        let dry = store
            .prune_events("cloudedge", Some(GoDuration::from_secs(50)), 0, now, true)
            .unwrap();
        assert_eq!(dry, ["e0"]);
        assert_eq!(
            store.count_events("cloudedge").unwrap(),
            4,
            "dry run deletes nothing"
        );
        let pruned = store
            .prune_events("cloudedge", Some(GoDuration::from_secs(50)), 2, now, false)
            .unwrap();
        assert_eq!(pruned, ["e0", "e1"]);
        assert_eq!(store.count_events("cloudedge").unwrap(), 2);
        assert!(store.list_runs("EventSubscription/s").unwrap().is_empty());
    }
}

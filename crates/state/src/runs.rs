//! `event_subscription_runs`: which events a subscription has processed, one row per
//! (subscription, event id). This is what makes re-delivery of an id never re-run a plugin.

use std::collections::HashMap;

use routerd_model::Timestamp;
use rusqlite::{params, Row};

use crate::{null_if_empty, parse_time_text, time_text, Result, StateError, Store};

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRun {
    pub id: i64,
    pub subscription: String,
    pub event_id: String,
    pub event_group: String,
    pub plugin: String,
    pub status: String,
    pub attempts: i64,
    pub started_at: String,
    pub completed_at: String,
    pub dynamic_source: String,
    pub dynamic_generation: i64,
    pub error: String,
}

/// The part of a run row that decides whether an event is eligible again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunState {
    pub succeeded: bool,
    pub failed: bool,
    pub attempts: i64,
}

/// How a batch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome<'a> {
    Succeeded {
        dynamic_source: &'a str,
        dynamic_generation: i64,
    },
    Failed {
        error: &'a str,
    },
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<SubscriptionRun> {
    Ok(SubscriptionRun {
        id: r.get(0)?,
        subscription: r.get(1)?,
        event_id: r.get(2)?,
        event_group: r.get(3)?,
        plugin: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        started_at: r.get(7)?,
        completed_at: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
        dynamic_source: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        dynamic_generation: r.get::<_, Option<i64>>(10)?.unwrap_or_default(),
        error: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
    })
}

impl Store {
    /// Run state per event id for one subscription.
    pub fn run_states(&self, subscription: &str) -> Result<HashMap<String, RunState>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT event_id, status, attempts FROM event_subscription_runs WHERE subscription = ?1")?;
        let rows = stmt.query_map([subscription], |r| {
            let status: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                RunState {
                    succeeded: status == "succeeded",
                    failed: status == "failed",
                    attempts: r.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks a batch as started: new pairs get attempts 1, unfinished pairs attempts + 1,
    /// succeeded pairs stay untouched. One transaction for the whole batch.
    pub fn start_runs(
        &self,
        subscription: &str,
        plugin: &str,
        events: &[(&str, &str)],
        started_at: Timestamp,
    ) -> Result<()> {
        if subscription.trim().is_empty() {
            return Err(StateError::Invalid("subscription is required".into()));
        }
        let started = time_text(started_at);
        let tx = self.write_tx()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO event_subscription_runs (subscription, event_id, event_group, plugin, status, attempts, started_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', 1, ?5)
                 ON CONFLICT(subscription, event_id) DO UPDATE SET
                   status     = CASE WHEN status = 'succeeded' THEN status     ELSE 'pending' END,
                   attempts   = CASE WHEN status = 'succeeded' THEN attempts   ELSE attempts + 1 END,
                   started_at = CASE WHEN status = 'succeeded' THEN started_at ELSE excluded.started_at END,
                   plugin     = CASE WHEN status = 'succeeded' THEN plugin     ELSE excluded.plugin END",
            )?;
            for (event_id, group) in events {
                if event_id.trim().is_empty() {
                    return Err(StateError::Invalid("event id is required".into()));
                }
                stmt.execute(params![subscription, event_id, group, plugin, started])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the result of a batch on every one of its events.
    pub fn finish_runs(
        &self,
        subscription: &str,
        event_ids: &[&str],
        outcome: &RunOutcome<'_>,
        completed_at: Timestamp,
    ) -> Result<()> {
        let (status, source, generation, error) = match outcome {
            RunOutcome::Succeeded {
                dynamic_source,
                dynamic_generation,
            } => (
                "succeeded",
                null_if_empty(dynamic_source),
                Some(*dynamic_generation).filter(|g| *g > 0),
                None,
            ),
            RunOutcome::Failed { error } => ("failed", None, None, null_if_empty(error)),
        };
        let completed = time_text(completed_at);
        let tx = self.write_tx()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE event_subscription_runs SET status = ?3, completed_at = ?4, dynamic_source = ?5,
                        dynamic_generation = ?6, error = ?7
                 WHERE subscription = ?1 AND event_id = ?2",
            )?;
            for id in event_ids {
                stmt.execute(params![
                    subscription,
                    id,
                    status,
                    completed,
                    source,
                    generation,
                    error
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every run row of one subscription, oldest first.
    pub fn list_runs(&self, subscription: &str) -> Result<Vec<SubscriptionRun>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, subscription, event_id, event_group, plugin, status, attempts, started_at, completed_at,
                    dynamic_source, dynamic_generation, error
             FROM event_subscription_runs WHERE subscription = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([subscription], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The stored start time of a run, parsed.
pub fn started_at(run: &SubscriptionRun) -> Timestamp {
    parse_time_text(Some(run.started_at.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::store_at;

    const SUB: &str = "EventSubscription/cloud-claims";

    #[test]
    fn start_counts_attempts_and_never_touches_succeeded_rows() {
        let (_d, store, _) = store_at(1_780_142_400);
        let batch = [("evt-1", "cloudedge"), ("evt-2", "cloudedge")];
        store
            .start_runs(SUB, "p", &batch, Timestamp::from_unix(1_780_142_400))
            .unwrap();
        store
            .finish_runs(
                SUB,
                &["evt-1"],
                &RunOutcome::Succeeded {
                    dynamic_source: "src",
                    dynamic_generation: 1,
                },
                Timestamp::from_unix(1_780_142_401),
            )
            .unwrap();
        store
            .finish_runs(
                SUB,
                &["evt-2"],
                &RunOutcome::Failed { error: "boom" },
                Timestamp::from_unix(1_780_142_401),
            )
            .unwrap();
        store
            .start_runs(SUB, "p2", &batch, Timestamp::from_unix(1_780_142_405))
            .unwrap();

        let runs = store.list_runs(SUB).unwrap();
        assert_eq!(runs.len(), 2);
        let (one, two) = (&runs[0], &runs[1]);
        assert_eq!(
            (one.status.as_str(), one.attempts, one.plugin.as_str()),
            ("succeeded", 1, "p")
        );
        assert_eq!(one.dynamic_source, "src");
        assert_eq!(
            (two.status.as_str(), two.attempts, two.plugin.as_str()),
            ("pending", 2, "p2")
        );
        assert_eq!(
            two.error, "boom",
            "the last error stays until the next result"
        );
        assert_eq!(started_at(two), Timestamp::from_unix(1_780_142_405));

        let states = store.run_states(SUB).unwrap();
        assert!(states["evt-1"].succeeded);
        assert_eq!(states["evt-2"].attempts, 2);
    }

    #[test]
    fn failure_clears_the_dynamic_source() {
        let (_d, store, _) = store_at(1_780_142_400);
        store
            .start_runs(SUB, "p", &[("e", "g")], Timestamp::from_unix(1))
            .unwrap();
        store
            .finish_runs(
                SUB,
                &["e"],
                &RunOutcome::Failed {
                    error: "plugin p failed: exit status 42",
                },
                Timestamp::from_unix(2),
            )
            .unwrap();
        let run = &store.list_runs(SUB).unwrap()[0];
        assert_eq!(
            (
                run.status.as_str(),
                run.dynamic_source.as_str(),
                run.dynamic_generation
            ),
            ("failed", "", 0)
        );
        assert_eq!(run.error, "plugin p failed: exit status 42");
        assert!(store
            .start_runs("", "p", &[("e", "g")], Timestamp::from_unix(1))
            .is_err());
    }
}

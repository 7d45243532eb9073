//! `apply_journal` and `apply_claims`: what the apply stage installed on the host, and how each
//! claim stood at the last pass.
//!
//! The journal is written *before* an action runs (an intent), so a crash between the kernel
//! change and the write can never leave something installed that routerd forgets to withdraw.
//! Actions are opaque JSON here; `routerd-apply` owns their meaning.

use routerd_model::Timestamp;
use rusqlite::{params, OptionalExtension};

use crate::{Result, Store};

/// One action routerd installed (or is about to install) on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Identifies the host object, e.g. `route 10.88.60.9/32 dev wg0 metric 120`.
    pub key: String,
    pub claim: String,
    pub action_json: String,
    pub installed_at: Timestamp,
    /// Set when the claim went away: the action is undone at or after this time.
    pub withdraw_after: Option<Timestamp>,
}

/// The outcome of the last pass for one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimStatusRow {
    pub claim: String,
    pub address: String,
    pub phase: String,
    pub reason: String,
    pub message: String,
    pub actions_json: String,
    pub dry_run: bool,
    pub updated_at: Timestamp,
}

impl Store {
    pub fn journal(&self) -> Result<Vec<JournalEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT action_key, claim, action_json, installed_at, withdraw_after
             FROM apply_journal ORDER BY claim, action_key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(JournalEntry {
                key: r.get(0)?,
                claim: r.get(1)?,
                action_json: r.get(2)?,
                installed_at: Timestamp::from_unix(r.get(3)?),
                withdraw_after: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_unix),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records an action about to be installed; an existing entry keeps its install time and
    /// stops being withdrawn.
    pub fn journal_record(&self, key: &str, claim: &str, action_json: &str) -> Result<()> {
        self.journal_record_many(&[(key, claim, action_json)])
    }

    /// [`Store::journal_record`] for many actions in one transaction: (key, claim, action).
    pub fn journal_record_many(&self, entries: &[(&str, &str, &str)]) -> Result<()> {
        let tx = self.write_tx()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO apply_journal (action_key, claim, action_json, installed_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(action_key) DO UPDATE SET claim = excluded.claim,
                     action_json = excluded.action_json, withdraw_after = NULL",
            )?;
            let now = self.now().unix_secs();
            for (key, claim, json) in entries {
                stmt.execute(params![key, claim, json, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The action is wanted again: cancel a pending withdrawal. True when one was cancelled.
    pub fn journal_hold(&self, key: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE apply_journal SET withdraw_after = NULL
             WHERE action_key = ?1 AND withdraw_after IS NOT NULL",
            [key],
        )? > 0)
    }

    /// Schedules the withdrawal of an action; an earlier schedule stands (a later pass does not
    /// push it back), a shorter grace brings it forward. Returns when it is due.
    pub fn journal_withdraw_at(&self, key: &str, at: Timestamp) -> Result<Option<Timestamp>> {
        Ok(self.journal_withdraw_many(&[key], at)?.pop().flatten())
    }

    /// [`Store::journal_withdraw_at`] for many entries in one transaction; returns each
    /// entry's due time, in order (`None` for a key that is not in the journal).
    pub fn journal_withdraw_many(
        &self,
        keys: &[&str],
        at: Timestamp,
    ) -> Result<Vec<Option<Timestamp>>> {
        let tx = self.write_tx()?;
        let mut due = Vec::with_capacity(keys.len());
        {
            let mut update = tx.prepare_cached(
                "UPDATE apply_journal SET withdraw_after = ?2
                 WHERE action_key = ?1 AND (withdraw_after IS NULL OR withdraw_after > ?2)",
            )?;
            let mut select = tx
                .prepare_cached("SELECT withdraw_after FROM apply_journal WHERE action_key = ?1")?;
            for key in keys {
                update.execute(params![key, at.unix_secs()])?;
                due.push(
                    select
                        .query_row([key], |r| r.get::<_, Option<i64>>(0))
                        .optional()?
                        .flatten()
                        .map(Timestamp::from_unix),
                );
            }
        }
        tx.commit()?;
        Ok(due)
    }

    pub fn journal_remove(&self, key: &str) -> Result<bool> {
        Ok(self.journal_remove_many(&[key])? > 0)
    }

    /// Removes many entries in one transaction; returns how many there were.
    pub fn journal_remove_many(&self, keys: &[&str]) -> Result<usize> {
        let tx = self.write_tx()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM apply_journal WHERE action_key = ?1")?;
            for key in keys {
                n += stmt.execute([key])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Replaces every claim status with the outcome of one pass. Writes nothing when only the
    /// time differs (a daemon passing every 30 s must not wake every database watcher), so
    /// `updated_at` is when the outcome last changed. True when something was written.
    pub fn replace_claim_statuses(&self, rows: &[ClaimStatusRow]) -> Result<bool> {
        let same = |a: &ClaimStatusRow, b: &ClaimStatusRow| {
            ClaimStatusRow {
                updated_at: b.updated_at,
                ..a.clone()
            } == *b
        };
        let current = self.claim_statuses()?;
        let mut sorted: Vec<&ClaimStatusRow> = rows.iter().collect();
        sorted.sort_by(|a, b| a.claim.cmp(&b.claim));
        if current.len() == sorted.len() && current.iter().zip(&sorted).all(|(a, b)| same(a, b)) {
            return Ok(false);
        }
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM apply_claims", [])?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO apply_claims (claim, address, phase, reason, message, actions_json,
                     dry_run, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in rows {
                insert.execute(params![
                    r.claim,
                    r.address,
                    r.phase,
                    r.reason,
                    r.message,
                    r.actions_json,
                    r.dry_run,
                    r.updated_at.unix_secs()
                ])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    pub fn claim_statuses(&self) -> Result<Vec<ClaimStatusRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT claim, address, phase, reason, message, actions_json, dry_run, updated_at
             FROM apply_claims ORDER BY claim",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ClaimStatusRow {
                claim: r.get(0)?,
                address: r.get(1)?,
                phase: r.get(2)?,
                reason: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                message: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                actions_json: r.get(5)?,
                dry_run: r.get(6)?,
                updated_at: Timestamp::from_unix(r.get(7)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::store_at;
    use routerd_model::Timestamp;

    #[test]
    fn journal_withdrawal_is_scheduled_once_and_cancelled_by_hold() {
        let (_d, store, clock) = store_at(1000);
        store.journal_record("route a", "c1", "{}").unwrap();
        let due = store
            .journal_withdraw_at("route a", Timestamp::from_unix(1600))
            .unwrap();
        assert_eq!(due, Some(Timestamp::from_unix(1600)));
        // A later pass does not push the deadline back.
        clock.set(Timestamp::from_unix(1300));
        let due = store
            .journal_withdraw_at("route a", Timestamp::from_unix(1900))
            .unwrap();
        assert_eq!(due, Some(Timestamp::from_unix(1600)));
        // A shorter grace brings it forward.
        let due = store
            .journal_withdraw_at("route a", Timestamp::from_unix(1300))
            .unwrap();
        assert_eq!(due, Some(Timestamp::from_unix(1300)));
        assert!(store.journal_hold("route a").unwrap());
        assert!(!store.journal_hold("route a").unwrap());
        let j = store.journal().unwrap();
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].withdraw_after, None);
        assert_eq!(j[0].installed_at, Timestamp::from_unix(1000));
        assert!(store.journal_remove("route a").unwrap());
        assert!(store.journal().unwrap().is_empty());
        assert_eq!(
            store
                .journal_withdraw_at("route a", Timestamp::from_unix(1))
                .unwrap(),
            None
        );
    }

    #[test]
    fn recording_again_keeps_the_install_time_and_cancels_withdrawal() {
        let (_d, store, clock) = store_at(1000);
        store.journal_record("k", "c1", "{\"v\":1}").unwrap();
        store
            .journal_withdraw_at("k", Timestamp::from_unix(2000))
            .unwrap();
        clock.set(Timestamp::from_unix(1500));
        store.journal_record("k", "c2", "{\"v\":2}").unwrap();
        let j = &store.journal().unwrap()[0];
        assert_eq!(
            (j.claim.as_str(), j.action_json.as_str()),
            ("c2", "{\"v\":2}")
        );
        assert_eq!(j.installed_at, Timestamp::from_unix(1000));
        assert_eq!(j.withdraw_after, None);
    }

    #[test]
    fn claim_statuses_are_replaced_whole() {
        let (_d, store, _c) = store_at(1000);
        let row = |claim: &str, phase: &str| super::ClaimStatusRow {
            claim: claim.into(),
            address: "10.88.60.9/32".into(),
            phase: phase.into(),
            reason: String::new(),
            message: String::new(),
            actions_json: "[]".into(),
            dry_run: true,
            updated_at: Timestamp::from_unix(1000),
        };
        store
            .replace_claim_statuses(&[row("a", "Planned"), row("b", "Pending")])
            .unwrap();
        store
            .replace_claim_statuses(&[row("b", "Installed")])
            .unwrap();
        let got = store.claim_statuses().unwrap();
        assert_eq!(got, vec![row("b", "Installed")]);
        // The same outcome later is not written again; the time stays when it changed.
        let mut later = row("b", "Installed");
        later.updated_at = Timestamp::from_unix(2000);
        assert!(!store.replace_claim_statuses(&[later]).unwrap());
        assert_eq!(store.claim_statuses().unwrap(), vec![row("b", "Installed")]);
    }
}

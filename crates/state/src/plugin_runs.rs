//! `plugin_runs`: one row per plugin execution, whatever triggered it.

use routerd_model::Timestamp;
use rusqlite::params;

use crate::{null_if_empty, parse_time_text, time_text, Result, Store};

#[derive(Debug, Clone, PartialEq)]
pub struct PluginRun {
    pub id: i64,
    pub plugin: String,
    pub trigger_type: String,
    pub trigger_topic: String,
    pub started_at: Timestamp,
    pub completed_at: Timestamp,
    pub exit_code: Option<i64>,
    pub status: String,
    pub stdout_digest: String,
    pub stderr: String,
    pub error: String,
}

/// What a finished run records.
#[derive(Debug, Clone, Default)]
pub struct PluginRunResult<'a> {
    pub succeeded: bool,
    pub exit_code: Option<i64>,
    pub stdout_digest: &'a str,
    pub stderr: &'a str,
    pub error: &'a str,
}

impl Store {
    /// Inserts a `running` row and returns its id.
    pub fn start_plugin_run(
        &self,
        plugin: &str,
        trigger_type: &str,
        trigger_topic: &str,
        started_at: Timestamp,
    ) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO plugin_runs (plugin, trigger_type, trigger_topic, started_at, status) VALUES (?1, ?2, ?3, ?4, 'running')",
            params![plugin, trigger_type, null_if_empty(trigger_topic), time_text(started_at)],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_plugin_run(
        &self,
        id: i64,
        completed_at: Timestamp,
        r: &PluginRunResult<'_>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE plugin_runs SET completed_at = ?2, exit_code = ?3, status = ?4, stdout_digest = ?5, stderr = ?6, error = ?7
             WHERE id = ?1",
            params![
                id,
                time_text(completed_at),
                r.exit_code,
                if r.succeeded { "succeeded" } else { "failed" },
                null_if_empty(r.stdout_digest),
                null_if_empty(r.stderr),
                null_if_empty(r.error),
            ],
        )?;
        Ok(())
    }

    /// Runs newest first, optionally of one plugin.
    pub fn list_plugin_runs(&self, plugin: Option<&str>) -> Result<Vec<PluginRun>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, plugin, trigger_type, trigger_topic, started_at, completed_at, exit_code, status,
                    stdout_digest, stderr, error
             FROM plugin_runs WHERE (?1 IS NULL OR plugin = ?1) ORDER BY started_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([plugin], |r| {
            Ok(PluginRun {
                id: r.get(0)?,
                plugin: r.get(1)?,
                trigger_type: r.get(2)?,
                trigger_topic: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                started_at: parse_time_text(r.get(4)?),
                completed_at: parse_time_text(r.get(5)?),
                exit_code: r.get(6)?,
                status: r.get(7)?,
                stdout_digest: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                stderr: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                error: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::store_at;

    #[test]
    fn a_run_goes_from_running_to_failed_with_its_reason() {
        let (_d, store, _) = store_at(1_780_142_400);
        let t = Timestamp::from_unix(1_780_142_400);
        let id = store
            .start_plugin_run("p", "federation-subscription", "cloud-claims", t)
            .unwrap();
        assert_eq!(
            store.list_plugin_runs(Some("p")).unwrap()[0].status,
            "running"
        );
        store
            .finish_plugin_run(
                id,
                t,
                &PluginRunResult {
                    exit_code: Some(42),
                    error: "plugin p failed: exit status 42",
                    ..Default::default()
                },
            )
            .unwrap();
        let run = &store.list_plugin_runs(None).unwrap()[0];
        assert_eq!(
            (
                run.status.as_str(),
                run.exit_code,
                run.trigger_topic.as_str()
            ),
            ("failed", Some(42), "cloud-claims")
        );
        assert_eq!(run.error, "plugin p failed: exit status 42");
        assert!(store.list_plugin_runs(Some("other")).unwrap().is_empty());
    }
}

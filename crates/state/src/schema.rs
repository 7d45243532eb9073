//! Schema and migrations.
//!
//! Table and column names are Go routerd's, so both generations of tools can share one file.
//! Our own schema version lives in `PRAGMA user_version`; each migration runs once, in order.
//! Go creates tables with `IF NOT EXISTS` and adds columns additively, so a file that Go made
//! (user_version 0, tables present) migrates cleanly too.

use rusqlite::Connection;

/// Migration N (1-based) brings the schema to version N.
const MIGRATIONS: &[&str] = &[
    // 1: Go's tables (with HEAD's columns) for events, deliveries, runs, parts, plugin runs.
    r#"
    CREATE TABLE IF NOT EXISTS federation_events (
        id TEXT PRIMARY KEY, group_name TEXT NOT NULL, source_node TEXT, type TEXT NOT NULL,
        subject TEXT, dedupe_key TEXT, payload TEXT, observed_at INTEGER, expires_at INTEGER,
        recorded_at INTEGER);
    CREATE INDEX IF NOT EXISTS federation_events_group ON federation_events(group_name, observed_at);

    CREATE TABLE IF NOT EXISTS event_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, peer TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_attempt_at INTEGER,
        last_error TEXT, delivered_at INTEGER, UNIQUE(event_id, peer));
    CREATE INDEX IF NOT EXISTS event_deliveries_peer ON event_deliveries(peer, status);

    CREATE TABLE IF NOT EXISTS event_subscription_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, subscription TEXT NOT NULL, event_id TEXT NOT NULL,
        event_group TEXT NOT NULL, plugin TEXT NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, started_at TEXT NOT NULL, completed_at TEXT,
        dynamic_source TEXT, dynamic_generation INTEGER, error TEXT, UNIQUE(subscription, event_id));
    CREATE INDEX IF NOT EXISTS event_subscription_runs_sub ON event_subscription_runs(subscription, status);

    CREATE TABLE IF NOT EXISTS dynamic_config_parts (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, generation INTEGER NOT NULL,
        observed_at TEXT NOT NULL, expires_at TEXT NOT NULL, digest TEXT NOT NULL,
        resources_json TEXT, directives_json TEXT, status TEXT NOT NULL, error TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE(source, generation));

    CREATE TABLE IF NOT EXISTS plugin_runs (
        id INTEGER PRIMARY KEY, plugin TEXT NOT NULL, trigger_type TEXT NOT NULL, trigger_topic TEXT,
        started_at TEXT NOT NULL, completed_at TEXT, exit_code INTEGER, status TEXT NOT NULL,
        stdout_digest TEXT, stderr TEXT, error TEXT);
    "#,
    // 2: lookups the pipeline does per pass (runs by event for pruning, parts by expiry).
    r#"
    CREATE INDEX IF NOT EXISTS event_subscription_runs_event ON event_subscription_runs(event_id);
    CREATE INDEX IF NOT EXISTS event_deliveries_event ON event_deliveries(event_id);
    "#,
    // 3: the apply stage (routerd-edge only; Go keeps claim status in its objects table).
    r#"
    CREATE TABLE IF NOT EXISTS apply_journal (
        action_key TEXT PRIMARY KEY, claim TEXT NOT NULL, action_json TEXT NOT NULL,
        installed_at INTEGER NOT NULL, withdraw_after INTEGER);
    CREATE TABLE IF NOT EXISTS apply_claims (
        claim TEXT PRIMARY KEY, address TEXT NOT NULL, phase TEXT NOT NULL, reason TEXT,
        message TEXT, actions_json TEXT NOT NULL, dry_run INTEGER NOT NULL,
        updated_at INTEGER NOT NULL);
    "#,
];

/// Columns Go HEAD added after p3; added here when a p3-made file lacks them.
const ADDITIVE_COLUMNS: &[(&str, &str, &str)] = &[
    ("event_deliveries", "event_expires_at", "INTEGER"),
    ("dynamic_config_parts", "actionplans_json", "TEXT"),
    ("dynamic_config_parts", "mobility_dataplane_json", "TEXT"),
    ("dynamic_config_parts", "arp_observer_intents_json", "TEXT"),
    ("dynamic_config_parts", "fib_verdicts_json", "TEXT"),
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("schema version {found} is newer than this routerd understands ({SCHEMA_VERSION}); upgrade routerd")]
    TooNew { found: i64 },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::TooNew { found: version });
    }
    let tx = conn.transaction()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    for (table, column, ty) in ADDITIVE_COLUMNS {
        let exists: bool = tx.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if !exists {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
        }
    }
    tx.commit()?;
    Ok(())
}

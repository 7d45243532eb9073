//! The state database: SQLite as the spine of the pipeline.
//!
//! Every stage reads its input from here and writes its output here, so any stage can restart
//! without loss and `routerctl` explains what happened by reading the same file. Only this crate
//! writes SQL; other crates call the typed functions of one module per table:
//! [`events`] (`federation_events`), [`deliveries`] (`event_deliveries`), [`runs`] (`event_subscription_runs`), [`parts`]
//! (`dynamic_config_parts`), [`plugin_runs`] and [`apply`] (`apply_journal`, `apply_claims`). [`schema`] holds the migrations and [`clock`]
//! the one injectable clock.
//!
//! Several processes may open the file at once (the daemon and `routerctl`): the file is in WAL
//! mode and every connection waits up to 5 s for a lock.

pub mod apply;
pub mod clock;
pub mod deliveries;
pub mod events;
pub mod parts;
pub mod plugin_runs;
pub mod runs;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use routerd_model::Timestamp;
use rusqlite::{Connection, OpenFlags};

pub use apply::{ClaimStatusRow, JournalEntry};
pub use clock::{Clock, ManualClock, SystemClock};
pub use deliveries::{Delivery, DeliveryQuery, DeliverySummary, PushResult};
pub use events::{EventQuery, Recorded, StoredEvent};
pub use plugin_runs::{PluginRun, PluginRunResult};
pub use runs::{RunState, SubscriptionRun};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("open state database {path}: {message}")]
    Open { path: String, message: String },
    #[error("state database {path}: {source}")]
    Migrate {
        path: String,
        source: schema::MigrateError,
    },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("decode {what}: {message}")]
    Decode { what: String, message: String },
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// One connection to the state database plus the clock that stamps what it writes.
pub struct Store {
    conn: Connection,
    clock: Arc<dyn Clock>,
    path: PathBuf,
}

impl Store {
    /// Opens read-write, creating the file, its directory and the schema as needed.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Store> {
        let open_err = |message: String| StateError::Open {
            path: path.display().to_string(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_err(format!("create directory {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        configure(&conn, true).map_err(|e| open_err(explain(e)))?;
        schema::migrate(&mut conn).map_err(|source| StateError::Migrate {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Store {
            conn,
            clock,
            path: path.to_path_buf(),
        })
    }

    /// A private database in memory (a dry run on a router that has stored nothing yet).
    pub fn open_in_memory(clock: Arc<dyn Clock>) -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        schema::migrate(&mut conn).map_err(|source| StateError::Migrate {
            path: ":memory:".into(),
            source,
        })?;
        Ok(Store {
            conn,
            clock,
            path: PathBuf::from(":memory:"),
        })
    }

    /// Opens an existing file read-only (the `dynamic` commands); never creates anything.
    pub fn open_read_only(path: &Path, clock: Arc<dyn Clock>) -> Result<Store> {
        let open_err = |message: String| StateError::Open {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            return Err(open_err(
                "no such file (nothing has been stored yet?)".into(),
            ));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        configure(&conn, false).map_err(|e| open_err(explain(e)))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| open_err(explain(e)))?;
        if version > schema::SCHEMA_VERSION {
            return Err(StateError::Migrate {
                path: path.display().to_string(),
                source: schema::MigrateError::TooNew { found: version },
            });
        }
        Ok(Store {
            conn,
            clock,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so it waits
    /// for other writers instead of failing when a read would have to be upgraded.
    pub(crate) fn write_tx(&self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
    }

    /// SQLite's `data_version`: changes when *another* connection committed since the last call
    /// on this one, never for this connection's own writes.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

fn configure(conn: &Connection, writable: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // Reading the schema first turns "not a database" into an error here, not on first use.
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?;
    if writable {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
        conn.pragma_update(None, "journal_size_limit", 67_108_864)?;
        conn.pragma_update(None, "foreign_keys", false)?;
    }
    Ok(())
}

fn explain(e: rusqlite::Error) -> String {
    let text = e.to_string();
    if text.contains("not a database") {
        format!("{text} (the file exists but is not a routerd SQLite state file)")
    } else {
        text
    }
}

/// TEXT time columns: RFC 3339 with nanoseconds, as Go writes them.
pub(crate) fn time_text(t: Timestamp) -> String {
    t.to_rfc3339()
}

/// Unparseable or missing text reads back as the zero time (Go's behaviour).
pub(crate) fn parse_time_text(s: Option<String>) -> Timestamp {
    s.and_then(|s| Timestamp::parse_rfc3339(&s).ok())
        .unwrap_or(Timestamp::ZERO)
}

/// Empty strings are stored as NULL in the text columns Go treats that way.
pub(crate) fn null_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn store_at(t: i64) -> (tempfile::TempDir, Store, ManualClock) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Timestamp::from_unix(t));
        let store = Store::open(&dir.path().join("routerd.db"), Arc::new(clock.clone())).unwrap();
        (dir, store, clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_sqlite_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.db");
        std::fs::write(
            &path,
            b"this is not a database, just text that is long enough to matter......",
        )
        .unwrap();
        let err = Store::open(&path, Arc::new(SystemClock))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a routerd SQLite state file"), "{err}");
        let err = Store::open_read_only(&path, Arc::new(SystemClock))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a routerd SQLite state file"), "{err}");
        // Nothing was written over the operator's file.
        assert!(std::fs::read(&path)
            .unwrap()
            .starts_with(b"this is not a database"));
    }

    #[test]
    fn read_only_open_of_a_missing_file_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        let err = Store::open_read_only(&path, Arc::new(SystemClock))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(&format!("open state database {}", path.display())),
            "{err}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn an_unwritable_location_is_a_clear_error() {
        let err = Store::open(
            Path::new("/proc/routerd-test/state.db"),
            Arc::new(SystemClock),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.starts_with("open state database /proc/routerd-test/state.db: create directory"),
            "{err}"
        );
    }

    #[test]
    fn reopening_migrates_once_and_refuses_newer_schemas() {
        let (dir, store, _) = testutil::store_at(1_780_142_400);
        let path = dir.path().join("routerd.db");
        drop(store);
        let store = Store::open(&path, Arc::new(SystemClock)).unwrap();
        let v: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::SCHEMA_VERSION);
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        let err = Store::open(&path, Arc::new(SystemClock))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("schema version 99 is newer"), "{err}");
    }

    #[test]
    fn a_go_p3_file_gains_the_head_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("go.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE event_deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
                 peer TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                 last_attempt_at INTEGER, last_error TEXT, delivered_at INTEGER, UNIQUE(event_id, peer));
                 INSERT INTO event_deliveries (event_id, peer, status) VALUES ('evt-1', 'cloud', 'delivered');",
            )
            .unwrap();
        }
        let store = Store::open(&path, Arc::new(SystemClock)).unwrap();
        let n: i64 = store
            .conn
            .query_row(
                "SELECT COUNT(*) FROM event_deliveries WHERE event_expires_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "the old row survives the migration");
    }

    #[test]
    fn two_connections_share_one_file() {
        let (dir, a, _) = testutil::store_at(1_780_142_400);
        let b = Store::open(&dir.path().join("routerd.db"), Arc::new(SystemClock)).unwrap();
        let mut e = routerd_model::Event {
            id: "x".into(),
            group: "g".into(),
            event_type: "t".into(),
            ..Default::default()
        };
        e.normalize().unwrap();
        a.record_event(&e).unwrap();
        assert!(b.get_event("x").unwrap().is_some());
        let ro =
            Store::open_read_only(&dir.path().join("routerd.db"), Arc::new(SystemClock)).unwrap();
        assert!(ro.get_event("x").unwrap().is_some());
        assert!(
            ro.record_event(&e).is_err(),
            "read-only connections refuse writes"
        );
    }
}

//! `cargo bench -p routerd`: emit throughput and one reconcile pass over 10,000 matched events,
//! each beside a raw rusqlite baseline measured in the same run. Prints ratios, asserts nothing.
//!
//! Needs the example plugin next to the routerd binary: `cargo build --release` first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routerd_model::{Event, GoDuration, Timestamp};
use routerd_state::{Clock, Store, SystemClock};
use routerd_subscribe::Controller;

const EMITS: usize = 5_000;
const MATCHED: usize = 10_000;

fn event(i: usize, now: Timestamp) -> Event {
    let addr = format!("10.88.{}.{}/32", i / 250, i % 250 + 1);
    let mut e = Event {
        id: format!("evt-bench-{i:06}"),
        group: "cloudedge".into(),
        source_node: "onprem-router".into(),
        event_type: "routerd.client.ipv4.observed".into(),
        subject: addr.clone(),
        payload: [
            ("address", addr.as_str()),
            ("domain", "cloudedge-same-subnet"),
            ("ownerSide", "onprem"),
            ("peerRef", "onprem-main"),
            ("providerRef", "example-provider"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        observed_at: now,
        expires_at: now.add(GoDuration::from_secs(1800)),
        ..Default::default()
    };
    e.normalize().unwrap();
    e
}

/// The same row, written with nothing but rusqlite: one autocommit INSERT per event.
fn raw_inserts(path: &Path, events: &[Event], one_transaction: bool) -> Duration {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE raw (id TEXT PRIMARY KEY, group_name TEXT NOT NULL, source_node TEXT, type TEXT NOT NULL,
         subject TEXT, dedupe_key TEXT, payload TEXT, observed_at INTEGER, expires_at INTEGER, recorded_at INTEGER)",
    )
    .unwrap();
    let start = Instant::now();
    if one_transaction {
        conn.execute_batch("BEGIN").unwrap();
    }
    let mut stmt = conn
        .prepare("INSERT INTO raw VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
        .unwrap();
    for e in events {
        let payload = serde_json::to_string(&e.payload).unwrap();
        stmt.execute(rusqlite::params![
            e.id,
            e.group,
            e.source_node,
            e.event_type,
            e.subject,
            e.dedupe_key,
            payload,
            e.observed_at.unix_secs(),
            e.expires_at.unix_secs(),
            e.observed_at.unix_secs()
        ])
        .unwrap();
    }
    if one_transaction {
        conn.execute_batch("COMMIT").unwrap();
    }
    start.elapsed()
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn plugin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_routerd")).with_file_name("event-to-remote-claim");
    if !p.is_file() {
        eprintln!(
            "{} is missing: run `cargo build --release` first",
            p.display()
        );
        std::process::exit(1);
    }
    p
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();

    // 1. emit: Store::record_event (what `routerctl federation event emit` calls).
    let events: Vec<Event> = (0..EMITS).map(|i| event(i, now)).collect();
    let store = Store::open(&dir.path().join("emit.db"), clock.clone()).unwrap();
    let start = Instant::now();
    for e in &events {
        store.record_event(e).unwrap();
    }
    let ours = start.elapsed();
    let raw = raw_inserts(&dir.path().join("raw-emit.db"), &events, false);
    println!("emit into the store ({EMITS} events, one transaction each)");
    println!(
        "  routerd-state record_event : {:>9.0} events/s",
        per_sec(EMITS, ours)
    );
    println!(
        "  raw rusqlite INSERT        : {:>9.0} events/s",
        per_sec(EMITS, raw)
    );
    println!(
        "  ratio (ours / raw time)    : {:>9.2}x",
        ours.as_secs_f64() / raw.as_secs_f64()
    );

    // The whole CLI process, for scale (process start + open + migrate check + insert).
    let cli_n = 100;
    let ctl = PathBuf::from(env!("CARGO_BIN_EXE_routerctl"));
    let state = dir.path().join("cli.db");
    let start = Instant::now();
    for i in 0..cli_n {
        let out = std::process::Command::new(&ctl)
            .args([
                "federation",
                "event",
                "emit",
                "--group",
                "cloudedge",
                "--type",
                "t",
                "--id",
            ])
            .arg(format!("cli-{i}"))
            .arg("--state-file")
            .arg(&state)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let cli = start.elapsed();
    println!(
        "  routerctl emit (process)   : {:>9.0} events/s ({:.1} ms each)",
        per_sec(cli_n, cli),
        cli.as_secs_f64() * 1000.0 / cli_n as f64
    );

    // 2. One reconcile pass over 10,000 matched events.
    let config = include_str!("../../../examples/receiver-cloud.yaml")
        .replace(
            "/usr/libexec/routerd/plugins/event-to-remote-claim/bin/event-to-remote-claim",
            &plugin().display().to_string(),
        )
        .replace("prefix: 10.88.60.0/24", "prefix: 10.88.0.0/16")
        .replace("subjectPrefixes: [10.88.60.]", "subjectPrefixes: [10.88.]");
    let router = routerd_model::load_str(&config, "bench").unwrap().router;
    let store = Store::open(&dir.path().join("pass.db"), clock.clone()).unwrap();
    let matched: Vec<Event> = (0..MATCHED).map(|i| event(i, now)).collect();
    for e in &matched {
        store.record_event(e).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let report = rt.block_on(Controller::once().pass(&store, &router, clock.now()));
    let pass = start.elapsed();
    let parts: usize = report.stored_parts().count();
    assert_eq!(
        report.subscriptions[0].matched, MATCHED,
        "{:?}",
        report.subscriptions[0]
    );
    let start = Instant::now();
    let again = rt.block_on(Controller::once().pass(&store, &router, clock.now()));
    let idle = start.elapsed();
    assert_eq!(again.subscriptions[0].matched, 0);
    let raw = raw_inserts(&dir.path().join("raw-pass.db"), &matched, true);
    println!(
        "reconcile pass over {MATCHED} matched events ({parts} batches → parts, plugin included)"
    );
    println!(
        "  first pass                 : {:>9.1} ms",
        pass.as_secs_f64() * 1000.0
    );
    println!(
        "  second pass (nothing new)  : {:>9.1} ms",
        idle.as_secs_f64() * 1000.0
    );
    println!(
        "  raw rusqlite: {MATCHED} INSERTs in one transaction: {:.1} ms",
        raw.as_secs_f64() * 1000.0
    );
    println!(
        "  ratio (pass / raw)         : {:>9.1}x",
        pass.as_secs_f64() / raw.as_secs_f64()
    );
}

//! `cargo bench -p routerd --bench federation`: the receiver under load, delivery latency between
//! two daemons on loopback, and daemon memory. Each throughput figure sits beside raw one-row
//! SQLite inserts measured in the same run. Prints; asserts nothing about time.
//!
//! BENCH_EVENTS (default 100000) sets how many events the memory figure is taken after.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routerd_model::{gojson, signature, Event, Timestamp};

const SECRET: &str = "bench-secret";

fn routerd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_routerd"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(
    dir: &Path,
    name: &str,
    node: &str,
    listen: Option<u16>,
    peer: Option<u16>,
) -> PathBuf {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut text = format!(
        "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {{name: {name}}}\nspec:\n  resources:\n    - apiVersion: federation.routerd.net/v1alpha1\n      kind: EventGroup\n      metadata: {{name: cloudedge}}\n      spec:\n        nodeName: {node}\n        auth: {{secretFile: {}}}\n",
        secret.display()
    );
    if let Some(port) = listen {
        text.push_str(&format!(
            "        listen: {{address: 127.0.0.1, port: {port}}}\n"
        ));
    }
    if let Some(port) = peer {
        text.push_str(&format!("    - apiVersion: federation.routerd.net/v1alpha1\n      kind: EventPeer\n      metadata: {{name: b}}\n      spec: {{groupRef: cloudedge, nodeName: b, endpoint: 'http://127.0.0.1:{port}'}}\n"));
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, state: &Path) -> Daemon {
    let child = Command::new(routerd())
        .args(["serve", "--config"])
        .arg(config)
        .arg("--state-file")
        .arg(state)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Daemon(child)
}

fn wait_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemon never listened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn event(id: String, now: Timestamp) -> Event {
    let mut e = Event {
        id,
        group: "cloudedge".into(),
        source_node: "a".into(),
        event_type: "routerd.client.ipv4.observed".into(),
        subject: "10.88.60.9/32".into(),
        payload: [("address".to_string(), "10.88.60.9/32".to_string())].into(),
        observed_at: now,
        ..Default::default()
    };
    e.normalize().unwrap();
    e
}

/// One signed push on a fresh connection (what the Go and Rust pushers do); returns the status.
fn push(port: u16, e: &Event) -> u16 {
    let body = gojson::to_vec(e).unwrap();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig = signature::sign(SECRET.as_bytes(), ts, &body);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nX-Routerd-Timestamp: {ts}\r\nX-Routerd-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn send_all(port: u16, senders: usize, per_sender: usize, prefix: &str) -> Duration {
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|t| {
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                let now = Timestamp::from_unix(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64,
                );
                for i in 0..per_sender {
                    assert_eq!(push(port, &event(format!("{prefix}-{t}-{i}"), now)), 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

fn raw_inserts(path: &Path, n: usize) -> Duration {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("CREATE TABLE raw (id TEXT PRIMARY KEY, body TEXT)")
        .unwrap();
    let start = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO raw VALUES (?1, ?2)",
            rusqlite::params![format!("e{i}"), "{\"address\":\"10.88.60.9/32\"}"],
        )
        .unwrap();
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    // The receiver alone.
    let port = free_port();
    let config = write_config(dir.path(), "recv", "b", Some(port), None);
    let daemon = serve(&config, &dir.path().join("recv.db"));
    wait_port(port);
    std::thread::sleep(Duration::from_millis(200));
    let idle = rss_kib(daemon.0.id());

    let n = 2_000;
    let raw = raw_inserts(&dir.path().join("raw.db"), n);
    println!("signed pushes into the receiver ({n} events, one connection each)");
    println!(
        "  raw rusqlite one-row INSERT : {:>8.0} events/s",
        n as f64 / raw.as_secs_f64()
    );
    for senders in [1, 16] {
        let took = send_all(port, senders, n / senders, &format!("s{senders}"));
        println!(
            "  {senders:>2} sender(s)                : {:>8.0} events/s  ({:.2}x the raw insert time)",
            n as f64 / took.as_secs_f64(),
            took.as_secs_f64() / raw.as_secs_f64()
        );
    }

    // Memory: idle, then after `total` received events.
    let already = 2 * n;
    let rest = total.saturating_sub(already);
    let took = send_all(port, 16, rest / 16, "mem");
    println!("memory of the daemon (VmRSS)");
    println!("  idle                        : {:>8} KiB", idle);
    println!(
        "  after {total} received events : {:>8} KiB  (the last {} took {:.1} s)",
        rss_kib(daemon.0.id()),
        rest / 16 * 16,
        took.as_secs_f64()
    );
    drop(daemon);

    // Emit → stored on the peer, two daemons on loopback.
    let port_b = free_port();
    let config_b = write_config(dir.path(), "b", "b", Some(port_b), None);
    let config_a = write_config(dir.path(), "a", "a", None, Some(port_b));
    let (state_a, state_b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let _b = serve(&config_b, &state_b);
    wait_port(port_b);
    let _a = serve(&config_a, &state_a);
    std::thread::sleep(Duration::from_millis(300));
    let ctl = routerd().with_file_name("routerctl");
    let reader = || {
        rusqlite::Connection::open_with_flags(&state_b, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    };
    let _ = reader();
    let mut lat = Vec::new();
    for i in 0..50 {
        let id = format!("lat-{i}");
        let start = Instant::now();
        let out = Command::new(&ctl)
            .args([
                "federation",
                "event",
                "emit",
                "--group",
                "cloudedge",
                "--type",
                "t",
                "--source-node",
                "a",
                "--id",
                &id,
                "--state-file",
            ])
            .arg(&state_a)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conn = reader();
        loop {
            let found: bool = conn
                .query_row(
                    "SELECT COUNT(*) > 0 FROM federation_events WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .unwrap_or(false);
            if found {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{id} never arrived"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        lat.push(start.elapsed());
    }
    lat.sort();
    println!("emit → stored on the peer (50 emits via routerctl, loopback, includes the routerctl process)");
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

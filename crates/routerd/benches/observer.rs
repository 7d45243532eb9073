//! `cargo bench -p routerd --bench observer` (root, network namespaces): the LAN observer with
//! 10,000 kernel neighbour entries. Prints figures; asserts nothing about time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLIENTS: usize = 10_000;

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

fn run(cmd: &str) {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn routerd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_routerd"))
}

fn count(state: &Path, kind: &str) -> usize {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(
        "SELECT COUNT(*) FROM federation_events WHERE type = ?1",
        [kind],
        |r| r.get::<_, i64>(0),
    )
    .unwrap_or(0) as usize
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `ip -batch` lines setting `n` neighbours to `nud` (same MACs every time).
fn neigh_batch(dir: &Path, dev: &str, n: usize, nud: &str) -> PathBuf {
    let mut text = String::new();
    for i in 0..n {
        let (hi, lo) = (i / 250, i % 250 + 2);
        text.push_str(&format!(
            "neigh replace 10.88.{hi}.{lo} lladdr 02:00:00:00:{:02x}:{:02x} nud {nud} dev {dev}\n",
            hi, lo
        ));
    }
    let p = dir.join(format!("neigh-{n}-{nud}.batch"));
    std::fs::write(&p, text).unwrap();
    p
}

struct Cleanup(String, Option<Child>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&format!("ip netns del {}", self.0));
    }
}

fn start(ns: &str, config: &Path, state: &Path) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(routerd())
        .args(["serve", "--config"])
        .arg(config)
        .arg("--state-file")
        .arg(state)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn config(dir: &Path, dev: &str, ttl: &str) -> PathBuf {
    let p = dir.join(format!("observer-{ttl}.yaml"));
    std::fs::write(
        &p,
        format!(
            "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {{name: bench}}\nspec:\n  resources:\n    - apiVersion: federation.routerd.net/v1alpha1\n      kind: EventGroup\n      metadata: {{name: g}}\n      spec: {{nodeName: n}}\n    - apiVersion: federation.routerd.net/v1alpha1\n      kind: ClientObserver\n      metadata: {{name: lan}}\n      spec: {{groupRef: g, interfaces: [{dev}], prefixes: [10.88.0.0/16], ttl: {ttl}, expireAfter: 1h}}\n"
        ),
    )
    .unwrap();
    p
}

fn main() {
    if !sh("id -u").stdout.starts_with(b"0")
        || !sh("ip netns add rdbenchprobe && ip netns del rdbenchprobe")
            .status
            .success()
    {
        println!("observer bench skipped: needs root and network namespaces");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = format!("rdobs{}", std::process::id() % 100_000);
    let dev = "lanbench";
    let mut guard = Cleanup(ns.clone(), None);
    run(&format!("ip netns add {ns} && ip -n {ns} link add {dev} type veth peer name benchpeer && ip -n {ns} addr add 10.88.255.1/16 dev {dev} && ip -n {ns} link set benchpeer up && ip -n {ns} link set {dev} up"));
    // The neighbour table limits are global on this kernel (default gc_thresh3 = 1024).
    run("sysctl -q -w net.ipv4.neigh.default.gc_thresh3=65536 net.ipv4.neigh.default.gc_thresh2=32768 net.ipv4.neigh.default.gc_thresh1=16384");

    // 1. Notifications path: the daemon runs, then 10,000 neighbours appear.
    let state = dir.path().join("obs.db");
    let cfg = config(dir.path(), dev, "5m");
    let child = start(&ns, &cfg, &state);
    let pid = child.id();
    guard.1 = Some(child);
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kib(pid);
    let batch = neigh_batch(dir.path(), dev, CLIENTS, "reachable");
    let start_t = Instant::now();
    run(&format!("ip -n {ns} -batch {}", batch.display()));
    let added = start_t.elapsed();
    while count(&state, "routerd.client.ipv4.observed") < CLIENTS {
        assert!(
            start_t.elapsed() < Duration::from_secs(120),
            "only {} stored",
            count(&state, "routerd.client.ipv4.observed")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let all_stored = start_t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let tracked_rss = rss_kib(pid);
    println!("LAN observer, {CLIENTS} neighbour entries (ip -batch on a veth)");
    println!(
        "  ip -batch added them in        : {:>8.0} ms",
        added.as_secs_f64() * 1000.0
    );
    println!(
        "  every client's event stored in : {:>8.0} ms (from the first `ip neigh replace`)",
        all_stored.as_secs_f64() * 1000.0
    );
    println!("  RSS idle / with {CLIENTS} tracked : {idle_rss} KiB / {tracked_rss} KiB");

    // 2. Updates that change nothing for the observer: REACHABLE <-> STALE with the same MAC
    // (the kernel notifies every state change; an identical replace is not notified).
    let stale = neigh_batch(dir.path(), dev, CLIENTS, "stale");
    let events_before = count(&state, "routerd.client.ipv4.observed");
    let ticks_before = cpu_ticks(pid);
    let t = Instant::now();
    for b in [&stale, &batch, &stale] {
        run(&format!("ip -n {ns} -batch {}", b.display()));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let ticks = cpu_ticks(pid) - ticks_before;
    let hz = 100.0; // USER_HZ on Linux
    let per_thousand_ms = ticks as f64 / hz * 1000.0 / (3.0 * CLIENTS as f64 / 1000.0);
    println!(
        "  CPU per 1,000 unchanged updates: {:>8.2} ms   ({} updates in {:.1} s, {} new events)",
        per_thousand_ms,
        3 * CLIENTS,
        t.elapsed().as_secs_f64(),
        count(&state, "routerd.client.ipv4.observed") - events_before
    );
    if let Some(mut c) = guard.1.take() {
        let _ = c.kill();
        let _ = c.wait();
    }

    // 3. Writes per client per hour, measured with a short TTL and extrapolated.
    run(&format!("ip -n {ns} neigh flush dev {dev}"));
    let state2 = dir.path().join("refresh.db");
    let cfg2 = config(dir.path(), dev, "30s");
    let clients = 1000;
    let batch2 = neigh_batch(dir.path(), dev, clients, "reachable");
    run(&format!("ip -n {ns} -batch {}", batch2.display()));
    guard.1 = Some(start(&ns, &cfg2, &state2));
    let window = Duration::from_secs(50);
    std::thread::sleep(window);
    let writes = count(&state2, "routerd.client.ipv4.observed");
    let per_hour = writes as f64 / clients as f64 * 3600.0 / window.as_secs_f64();
    println!("database writes per client per hour");
    println!(
        "  measured, ttl 30s (refresh 15 s before expiry): {per_hour:.0} ({writes} writes for {clients} clients in {}s, the first sighting included)",
        window.as_secs()
    );
    println!("  by the same rule, ttl 5m (refresh 60 s before): 3600 / 240 = 15; neighbour updates in between write nothing");
}

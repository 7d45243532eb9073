//! Two real daemons federating on loopback: real sockets, real processes, real SQLite.

mod common;
use common::*;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const SECRET: &str = "0123456789abcdef0123456789abcdef\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A `routerd serve` process, killed when dropped.
struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(lab: &Lab, tag: &str) -> Daemon {
        let log = lab.path(&format!("{tag}.log"));
        let child = lab.spawn_serve(None, &format!("{tag}.log"));
        Daemon { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
    fn wait_ready(&self, what: &str) {
        assert!(
            wait_until(Duration::from_secs(10), || self.log().contains(what)).is_some(),
            "never ready: {}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_secret(lab: &Lab) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = lab.path("cloudedge.key");
    std::fs::write(&p, SECRET).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// The on-prem sender: its EventGroup and a peer at `port`.
fn sender(port: u16) -> Lab {
    let lab = Lab::new();
    let secret = write_secret(&lab);
    let config = format!(
        "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: cloudedge-sender}}
spec:
  resources:
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventGroup
      metadata: {{name: cloudedge}}
      spec:
        nodeName: onprem-router
        auth: {{mode: hmac, secretFile: {secret}}}
        retention: {{maxEvents: 1000, maxAge: 24h}}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {{name: cloud-router}}
      spec:
        groupRef: cloudedge
        nodeName: cloud-router
        endpoint: http://127.0.0.1:{port}
        types: [routerd.client.ipv4.observed, routerd.client.ipv4.expired]
        subjectPrefixes: [10.88.60.]
"
    );
    std::fs::write(lab.config(), config).unwrap();
    lab
}

/// The cloud receiver: the example config listening on 127.0.0.1:`port`, with a peer back to
/// the sender (which must never get received events back).
fn receiver(port: u16, back_port: u16) -> Lab {
    let lab = Lab::new();
    let secret = write_secret(&lab);
    let peer_back = format!(
        "    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {{name: onprem-router}}
      spec: {{groupRef: cloudedge, nodeName: onprem-router, endpoint: 'http://127.0.0.1:{back_port}'}}
"
    );
    let text = EXAMPLE
        .replace(PACKAGED_PLUGIN, &example_plugin().display().to_string())
        .replace("/etc/routerd/secrets/cloudedge.key", &secret)
        .replace(
            "address: 169.254.110.2\n          port: 8787",
            &format!("address: 127.0.0.1\n          port: {port}"),
        )
        + &peer_back;
    std::fs::write(lab.config(), text).unwrap();
    lab
}

fn event_ids(lab: &Lab) -> Vec<String> {
    lab.events()
        .iter()
        .map(|e| e["ID"].as_str().unwrap().to_string())
        .collect()
}

fn deliveries(lab: &Lab) -> Vec<serde_json::Value> {
    let out = lab.ctl(&[
        "federation",
        "event",
        "deliveries",
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array().cloned().unwrap_or_default()
}

fn delivered(lab: &Lab, id: &str) -> bool {
    deliveries(lab)
        .iter()
        .any(|d| d["EventID"] == id && d["Status"] == "delivered")
}

fn rendered_claims(lab: &Lab) -> Vec<serde_yaml::Value> {
    let out = lab.render();
    if !out.status.success() {
        return vec![];
    }
    claims(&out.stdout)
}

#[test]
fn emit_on_a_is_stored_on_b_within_2s_and_becomes_one_claim() {
    let (port_b, port_a) = (free_port(), free_port());
    let (a, b) = (sender(port_b), receiver(port_b, port_a));
    let db = Daemon::start(&b, "b");
    db.wait_ready("receiver listening");
    let da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");

    assert!(a.emit(&["--id", "evt-first"]).status.success());
    let took = wait_until(Duration::from_secs(2), || {
        event_ids(&b).contains(&"evt-first".to_string())
    });
    assert!(
        took.is_some(),
        "not stored on B within 2 s\nA: {}\nB: {}",
        da.log(),
        db.log()
    );
    eprintln!("emit on A → stored on B: {:?}", took.unwrap());

    assert!(
        wait_until(Duration::from_secs(10), || rendered_claims(&b).len() == 1).is_some(),
        "B: {}",
        db.log()
    );
    assert!(wait_until(Duration::from_secs(5), || delivered(&a, "evt-first")).is_some());

    // The same client seen again under a new id: still one claim on B.
    assert!(a.emit(&["--id", "evt-second"]).status.success());
    assert!(wait_until(Duration::from_secs(10), || {
        rendered_claims(&b)
            .first()
            .map(|c| c["metadata"]["annotations"]["routerd.net/event-id"] == "evt-second")
            .unwrap_or(false)
    })
    .is_some());
    assert_eq!(rendered_claims(&b).len(), 1);

    // B never pushes what it received, though it has a peer for A.
    assert!(deliveries(&b).is_empty(), "{:?}", deliveries(&b));
    assert_eq!(event_ids(&a), ["evt-first", "evt-second"]);
    // No duplicate rows anywhere.
    assert_eq!(deliveries(&a).len(), 2);
    let summary = a.json(&[
        "federation",
        "deliveries",
        "summary",
        "--state-file",
        &a.state(),
        "-o",
        "json",
    ]);
    assert_eq!(summary[0]["delivered"], 2);
    assert_eq!(summary[0]["peer"], "cloud-router");
}

#[test]
fn a_peer_that_is_down_gets_the_event_when_it_comes_up() {
    let (port_b, port_a) = (free_port(), free_port());
    let (a, b) = (sender(port_b), receiver(port_b, port_a));
    let da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");
    assert!(a.emit(&["--id", "evt-while-down"]).status.success());
    assert!(wait_until(Duration::from_secs(10), || deliveries(&a)
        .iter()
        .any(|d| d["Status"] == "failed"))
    .is_some());
    let failed = deliveries(&a);
    assert!(
        failed[0]["LastError"]
            .as_str()
            .unwrap()
            .contains("connection refused")
            || failed[0]["LastError"]
                .as_str()
                .unwrap()
                .contains("dial tcp"),
        "{failed:?}"
    );
    assert_eq!(failed[0]["Attempts"], 3);

    let db = Daemon::start(&b, "b");
    db.wait_ready("receiver listening");
    assert!(
        wait_until(Duration::from_secs(15), || delivered(&a, "evt-while-down")).is_some(),
        "A: {}",
        da.log()
    );
    assert_eq!(event_ids(&b), ["evt-while-down"]);
}

#[test]
fn an_emit_survives_a_sigkill_of_the_sender() {
    let (port_b, port_a) = (free_port(), free_port());
    let (a, b) = (sender(port_b), receiver(port_b, port_a));
    let db = Daemon::start(&b, "b");
    db.wait_ready("receiver listening");
    let mut da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");
    assert!(a.emit(&["--id", "evt-killed"]).status.success());
    da.signal("-KILL");
    let _ = da.child.wait();
    let restarted = Daemon::start(&a, "a2");
    assert!(
        wait_until(Duration::from_secs(10), || delivered(&a, "evt-killed")).is_some(),
        "{}",
        restarted.log()
    );
    assert_eq!(event_ids(&b), ["evt-killed"], "exactly one row on B");
    assert_eq!(deliveries(&a).len(), 1);
}

#[test]
fn a_peer_answering_500_is_retried_and_recorded() {
    let (port, hits) = fake_peer("500 Internal Server Error", "store error\n");
    let a = sender(port);
    let da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");
    assert!(a.emit(&["--id", "evt-500"]).status.success());
    assert!(wait_until(Duration::from_secs(10), || deliveries(&a)
        .iter()
        .any(|d| d["Status"] == "failed"))
    .is_some());
    let d = &deliveries(&a)[0];
    assert_eq!(d["LastError"], "peer returned HTTP 500");
    assert_eq!(d["Attempts"], 3);
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[test]
fn sighup_with_a_bad_config_keeps_running_and_sigterm_exits_0_quickly() {
    let (port_b, port_a) = (free_port(), free_port());
    let (a, b) = (sender(port_b), receiver(port_b, port_a));
    let db = Daemon::start(&b, "b");
    db.wait_ready("receiver listening");
    let mut da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");

    let good = std::fs::read_to_string(a.config()).unwrap();
    std::fs::write(a.config(), "apiVersion: [broken").unwrap();
    da.signal("-HUP");
    assert!(
        wait_until(Duration::from_secs(5), || da
            .log()
            .contains("config reload refused"))
        .is_some(),
        "{}",
        da.log()
    );
    assert!(da.child.try_wait().unwrap().is_none(), "still running");
    std::fs::write(a.config(), good).unwrap();
    assert!(a.emit(&["--id", "evt-after-hup"]).status.success());
    assert!(
        wait_until(Duration::from_secs(5), || delivered(&a, "evt-after-hup")).is_some(),
        "{}",
        da.log()
    );

    da.signal("-TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = da.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "did not exit within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_receiver_without_its_secret_file_refuses_to_start() {
    let (port_b, port_a) = (free_port(), free_port());
    let b = receiver(port_b, port_a);
    std::fs::remove_file(b.path("cloudedge.key")).unwrap();
    let out = cmd(routerd())
        .args(["serve", "--config", &b.config(), "--state-file", &b.state()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("EventGroup cloudedge: secret file") && err.contains("No such file"),
        "{err}"
    );

    std::fs::write(b.path("cloudedge.key"), " \n").unwrap();
    let out = cmd(routerd())
        .args(["serve", "--config", &b.config(), "--state-file", &b.state()])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("empty secret file"),
        "{}",
        text(&out.stderr)
    );
    let _ = Path::new("");
}

#[test]
fn serve_once_pushes_without_binding() {
    let (port_b, port_a) = (free_port(), free_port());
    let (a, b) = (sender(port_b), receiver(port_b, port_a));
    let db = Daemon::start(&b, "b");
    db.wait_ready("receiver listening");
    assert!(a.emit(&["--id", "evt-once"]).status.success());
    let out = a.serve_once();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("pushed 1 delivered, 0 failed"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(event_ids(&b), ["evt-once"]);
}

/// A fake peer that answers every push with `status` and `body`.
fn fake_peer(
    status: &'static str,
    body: &'static str,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (port, hits)
}

#[test]
fn clock_skew_is_logged_once_per_peer_and_shown_as_the_last_error() {
    let (port, hits) = fake_peer("403 Forbidden", "stale timestamp\n");
    let a = sender(port);
    let da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");
    assert!(a.emit(&["--id", "evt-skew-1"]).status.success());
    assert!(a.emit(&["--id", "evt-skew-2"]).status.success());
    assert!(wait_until(Duration::from_secs(10), || deliveries(&a)
        .iter()
        .filter(|d| d["Status"] == "failed")
        .count()
        == 2)
    .is_some());
    let d = &deliveries(&a)[0];
    assert!(
        d["LastError"]
            .as_str()
            .unwrap()
            .contains("stale timestamp (the two clocks differ by more than the replay window)"),
        "{d}"
    );
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 6,
        "every attempt was made"
    );
    assert_eq!(
        da.log()
            .matches("peer refuses our timestamps as stale")
            .count(),
        1,
        "{}",
        da.log()
    );
}

#[test]
fn a_ttl_refreshed_during_a_partition_is_delivered_when_the_peer_returns() {
    let (port_b, port_a) = (free_port(), free_port());
    let (a, b) = (sender(port_b), receiver(port_b, port_a));
    let mut db = Daemon::start(&b, "b");
    db.wait_ready("receiver listening");
    let da = Daemon::start(&a, "a");
    da.wait_ready("routerd serving");
    assert!(a
        .emit(&["--id", "evt-ttl", "--ttl", "10m"])
        .status
        .success());
    assert!(wait_until(Duration::from_secs(5), || delivered(&a, "evt-ttl")).is_some());
    let first_expiry = b.json(&[
        "federation",
        "event",
        "list",
        "--state-file",
        &b.state(),
        "-o",
        "json",
    ])[0]["ExpiresAt"]
        .clone();

    // Partition: B goes away; the fact is observed again under the same id with a longer TTL.
    db.signal("-KILL");
    let _ = db.child.wait();
    assert!(a
        .emit(&["--id", "evt-ttl", "--ttl", "20m"])
        .status
        .success());
    assert!(
        wait_until(Duration::from_secs(5), || deliveries(&a)
            .iter()
            .any(|d| d["Status"] == "failed"))
        .is_some(),
        "the refresh was attempted"
    );

    let db = Daemon::start(&b, "b2");
    db.wait_ready("receiver listening");
    assert!(
        wait_until(Duration::from_secs(15), || {
            let v = b.json(&[
                "federation",
                "event",
                "list",
                "--state-file",
                &b.state(),
                "-o",
                "json",
            ]);
            v[0]["ExpiresAt"] != first_expiry
        })
        .is_some(),
        "the newer TTL reached B\nA: {}",
        da.log()
    );
    assert!(delivered(&a, "evt-ttl"));
    assert_eq!(event_ids(&b), ["evt-ttl"]);
    // The re-delivered id never re-runs B's plugin.
    std::thread::sleep(Duration::from_millis(300));
    let runs = b.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["Attempts"], 1);
}

#[test]
fn expired_and_foreign_events_are_never_pushed() {
    let (port, hits) = fake_peer("200 OK", "{}");
    let a = sender(port);
    let hour_ago = hour_ago();
    assert!(a
        .emit(&["--id", "evt-expired", "--observed-at", &hour_ago])
        .status
        .success());
    assert!(a
        .emit(&["--id", "evt-foreign", "--source-node", "someone-else"])
        .status
        .success());
    assert!(a
        .emit(&["--id", "evt-unwanted", "--subject", "192.0.2.1/32"])
        .status
        .success());
    let out = a.serve_once();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(deliveries(&a).is_empty(), "{:?}", deliveries(&a));
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let bad = a.ctl(&[
        "federation",
        "event",
        "deliveries",
        "--state-file",
        &a.state(),
        "--status",
        "lost",
    ]);
    assert!(text(&bad.stderr)
        .contains("invalid --status \"lost\": must be one of pending, delivered, failed"));
}

//! The LAN client observer against real kernel neighbour tables: a router namespace with LAN
//! veths and client namespaces that really ARP. Needs root and `ip`; skips otherwise.

mod common;
use common::*;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Net {
    tag: String,
    namespaces: Vec<String>,
    daemon: Option<Child>,
}

impl Net {
    fn ns(&self, role: &str) -> String {
        format!("rd{role}{}", self.tag)
    }
    fn add_ns(&mut self, role: &str) -> String {
        let ns = self.ns(role);
        run(&format!(
            "ip netns add {ns} && ip netns exec {ns} ip link set lo up"
        ));
        self.namespaces.push(ns.clone());
        ns
    }
    /// A veth from the router (`router_if`, `router_ip`) to a client namespace (`client_ip`).
    fn link(&self, router_if: &str, client_ns: &str, client_ips: &[&str], router_ips: &[&str]) {
        let router = self.ns("R");
        let peer = format!("{}p", router_if);
        run(&format!(
            "ip link add {router_if} netns {router} type veth peer name {peer} netns {client_ns}"
        ));
        for ip in router_ips {
            run(&format!(
                "ip netns exec {router} ip addr add {ip} dev {router_if}"
            ));
        }
        for ip in client_ips {
            run(&format!(
                "ip netns exec {client_ns} ip addr add {ip} dev {peer}"
            ));
        }
        run(&format!("ip netns exec {router} ip link set {router_if} up && ip netns exec {client_ns} ip link set {peer} up"));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in &self.namespaces {
            let _ = sh(&format!("ip netns del {ns}"));
        }
    }
}

/// Kills a helper process when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes `ns` ARP for `ip` by sending it one UDP datagram.
fn poke(ns: &str, ip: &str) {
    run(&format!(
        "ip netns exec {ns} python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('{ip}', 9))\""
    ));
}

fn mac_of(ns: &str, dev: &str) -> String {
    text(
        &sh(&format!(
            "ip netns exec {ns} cat /sys/class/net/{dev}/address"
        ))
        .stdout,
    )
    .trim()
    .to_string()
}

fn count(lab: &Lab, kind: &str, subject: &str) -> usize {
    lab.events()
        .iter()
        .filter(|e| e["Type"] == kind && e["Subject"] == subject)
        .count()
}

const OBSERVED: &str = "routerd.client.ipv4.observed";
const EXPIRED: &str = "routerd.client.ipv4.expired";

fn start(net: &mut Net, lab: &Lab, log: &str) {
    net.daemon = Some(lab.spawn_serve(Some(&net.ns("R")), log));
    let logtext = || std::fs::read_to_string(lab.path(log)).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || logtext()
            .contains("routerd serving")),
        "{}",
        logtext()
    );
}

fn stop(net: &mut Net) {
    if let Some(mut d) = net.daemon.take() {
        let _ = d.kill();
        let _ = d.wait();
    }
}

#[test]
fn observes_lan_clients_through_the_kernel_neighbour_table() {
    if let Some(why) = netns_unavailable(&["ip", "python3"]) {
        eprintln!("SKIPPED observes_lan_clients_through_the_kernel_neighbour_table: {why}");
        return;
    }
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let mut net = Net {
        tag: tag.clone(),
        namespaces: vec![],
        daemon: None,
    };
    let router = net.add_ns("R");
    let client = net.add_ns("C");
    let other = net.add_ns("X");
    let (lan, oth, late) = (
        format!("lan{tag}"),
        format!("oth{tag}"),
        format!("late{tag}"),
    );
    net.link(
        &lan,
        &client,
        &["10.88.60.9/24", "192.0.2.9/24"],
        &["10.88.60.1/24", "192.0.2.1/24"],
    );
    net.link(&oth, &other, &["10.99.0.30/24"], &["10.99.0.1/24"]);

    let lab = Lab::new();
    let secret = lab.path("cloudedge.key");
    std::fs::write(&secret, "observer-test-secret\n").unwrap();
    let secret = secret.display();
    // A stand-in cloud peer inside the router namespace that accepts every push.
    let peer = ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &router, "python3", "-c"])
            .arg(
                "import http.server as h\n\
                 class R(h.BaseHTTPRequestHandler):\n\
                 \x20def do_POST(s):\n\
                 \x20 s.rfile.read(int(s.headers['Content-Length'])); s.send_response(200); s.end_headers(); s.wfile.write(b'{}')\n\
                 \x20def log_message(s, *a): pass\n\
                 h.HTTPServer(('127.0.0.1', 8799), R).serve_forever()",
            )
            .spawn()
            .unwrap(),
    );
    std::fs::write(
        lab.config(),
        format!(
            "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: onprem}}
spec:
  resources:
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventGroup
      metadata: {{name: cloudedge}}
      spec: {{nodeName: onprem-router, auth: {{secretFile: {secret}}}}}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {{name: cloud-router}}
      spec: {{groupRef: cloudedge, nodeName: cloud-router, endpoint: 'http://127.0.0.1:8799', types: [routerd.client.ipv4.observed]}}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: ClientObserver
      metadata: {{name: lan-clients}}
      spec:
        groupRef: cloudedge
        interfaces: [{lan}, {late}]
        prefixes: [10.88.60.0/24, 10.88.70.0/24, 10.99.0.0/24]
        ttl: 60s
        expireAfter: 3s
        payload: {{domain: cloudedge-same-subnet, ownerSide: onprem}}
"
        ),
    )
    .unwrap();
    start(&mut net, &lab, "r.log");

    // First sight: one event within 2 s, with the client's MAC and the configured payload.
    let sent = Instant::now();
    poke(&client, "10.88.60.1");
    assert!(
        wait_until(Duration::from_secs(2), || count(
            &lab,
            OBSERVED,
            "10.88.60.9/32"
        ) == 1),
        "{:?}",
        lab.events()
    );
    eprintln!("first sight → stored: {:?}", sent.elapsed());
    let e = lab
        .events()
        .into_iter()
        .find(|e| e["Subject"] == "10.88.60.9/32")
        .unwrap();
    assert_eq!(
        e["Payload"]["mac"],
        mac_of(&client, &format!("{lan}p")).as_str()
    );
    assert_eq!(e["Payload"]["interface"], lan.as_str());
    // Observed facts flow to the peer through the outbox like emitted ones.
    let id = e["ID"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let out = lab.ctl(&[
                "federation",
                "event",
                "deliveries",
                "--state-file",
                &lab.state(),
                "--event-id",
                &id,
                "-o",
                "json",
            ]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v[0]["Status"] == "delivered"
        }),
        "the observed event was not pushed"
    );
    drop(peer);
    assert_eq!(e["Payload"]["address"], "10.88.60.9/32");
    assert_eq!(e["Payload"]["domain"], "cloudedge-same-subnet");
    assert_eq!(e["SourceNode"], "onprem-router");
    assert_eq!(e["DedupeKey"], "observer:onprem-router:10.88.60.9_32");

    // Ignored: proxy and permanent entries, addresses outside the prefixes, unlisted interfaces.
    run(&format!(
        "ip netns exec {router} ip neigh add proxy 10.88.60.50 dev {lan}"
    ));
    run(&format!("ip netns exec {router} ip neigh replace 10.88.60.51 lladdr 02:00:00:00:00:51 nud permanent dev {lan}"));
    poke(&client, "192.0.2.1");
    poke(&other, "10.99.0.1");
    // Repeated traffic inside the TTL writes nothing.
    for _ in 0..5 {
        poke(&client, "10.88.60.1");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let subjects: Vec<String> = lab
        .events()
        .iter()
        .map(|e| e["Subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects, ["10.88.60.9/32"], "only the LAN client, once");

    // Gone: the expired fact only after expireAfter (3 s).
    run(&format!(
        "ip netns exec {router} ip neigh del 10.88.60.9 dev {lan}"
    ));
    let gone = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        count(&lab, EXPIRED, "10.88.60.9/32"),
        0,
        "not before expireAfter"
    );
    assert!(wait_until(Duration::from_secs(8), || count(
        &lab,
        EXPIRED,
        "10.88.60.9/32"
    ) == 1));
    assert!(gone.elapsed() >= Duration::from_secs(3));

    // Back: a new observation. Then a restart while it is valid writes nothing new.
    poke(&client, "10.88.60.1");
    assert!(wait_until(Duration::from_secs(2), || count(
        &lab,
        OBSERVED,
        "10.88.60.9/32"
    ) == 2));
    stop(&mut net);
    start(&mut net, &lab, "r2.log");
    poke(&client, "10.88.60.1");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        count(&lab, OBSERVED, "10.88.60.9/32"),
        2,
        "restart makes no duplicate"
    );

    // An interface created after start is observed.
    let latecomer = net.add_ns("L");
    net.link(&late, &latecomer, &["10.88.70.9/24"], &["10.88.70.1/24"]);
    poke(&latecomer, "10.88.70.1");
    assert!(
        wait_until(Duration::from_secs(3), || count(
            &lab,
            OBSERVED,
            "10.88.70.9/32"
        ) == 1),
        "{:?}",
        lab.events()
    );

    // An interface that goes away is handled: the daemon keeps running.
    run(&format!("ip netns exec {router} ip link del {late}"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        net.daemon.as_mut().unwrap().try_wait().unwrap().is_none(),
        "still running"
    );
}

#[test]
fn serve_once_observes_the_current_table() {
    if let Some(why) = netns_unavailable(&["ip", "python3"]) {
        eprintln!("SKIPPED serve_once_observes_the_current_table: {why}");
        return;
    }
    let tag = format!("{:x}", (std::process::id() + 7) % 0xfffff);
    let mut net = Net {
        tag: tag.clone(),
        namespaces: vec![],
        daemon: None,
    };
    let router = net.add_ns("R");
    let client = net.add_ns("C");
    let lan = format!("lan{tag}");
    net.link(&lan, &client, &["10.88.60.9/24"], &["10.88.60.1/24"]);
    poke(&client, "10.88.60.1");
    let lab = Lab::new();
    std::fs::write(
        lab.config(),
        format!(
            "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: onprem}}
spec:
  resources:
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventGroup
      metadata: {{name: cloudedge}}
      spec: {{nodeName: onprem-router}}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: ClientObserver
      metadata: {{name: lan}}
      spec: {{groupRef: cloudedge, interfaces: [{lan}], prefixes: [10.88.60.0/24]}}
"
        ),
    )
    .unwrap();
    let once = |lab: &Lab| {
        let out = Command::new("ip")
            .args(["netns", "exec", &router])
            .arg(routerd())
            .args([
                "serve",
                "--once",
                "--config",
                &lab.config(),
                "--state-file",
                &lab.state(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(once(&lab).contains("observer lan: 1 client(s), 1 event(s) written"));
    assert!(
        once(&lab).contains("observer lan: 1 client(s), 0 event(s) written"),
        "a second pass writes nothing"
    );
    assert_eq!(count(&lab, OBSERVED, "10.88.60.9/32"), 1);
}

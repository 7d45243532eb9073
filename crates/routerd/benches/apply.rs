//! `cargo bench -p routerd --bench apply` (root, network namespaces, wireguard-go): the apply
//! stage on a real kernel. Prints figures and ratios against `ip -batch` + one `wg set` doing
//! the same kernel work in the same run; asserts nothing about time.
//!
//! 1. one live pass over 1,000 claims (1,000 routes + 1,000 allowed IPs), and the same pass
//!    again (everything in place);
//! 2. with `routerd serve --live` running: time from `routerctl emit` to the route in the kernel.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLAIMS: usize = 1_000;
const LATENCY_SAMPLES: usize = 20;

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

fn bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_routerd")).with_file_name(name)
}

struct Cleanup {
    ns: String,
    wg: String,
    daemon: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.daemon {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&format!(
            "ip -n {} link del {} 2>/dev/null; ip netns del {}; rm -f /var/run/wireguard/{}.sock",
            self.ns, self.wg, self.ns, self.wg
        ));
    }
}

fn timed(cmd: &str) -> Duration {
    let t = Instant::now();
    run(cmd);
    t.elapsed()
}

fn route_count(ns: &str) -> usize {
    String::from_utf8_lossy(&sh(&format!("ip -n {ns} route show proto static")).stdout)
        .lines()
        .count()
}

/// The example receiver config on device `wg` (peer key `key`), with `n` claims in the startup
/// config (10.88.0.0/16) and the listener removed.
fn config(wg: &str, key: &str, n: usize) -> String {
    let mut text = include_str!("../../../examples/receiver-cloud.yaml")
        .replace("wg-hybrid", wg)
        .replace("ONPREM_PEER_PUBLIC_KEY_REPLACE_ME", key)
        .replace("prefix: 10.88.60.0/24", "prefix: 10.88.0.0/16")
        .replace(
            "address: 169.254.110.2\n          port: 8787",
            "address: ''\n          port: 0",
        )
        .replace(
            "/usr/libexec/routerd/plugins/event-to-remote-claim/bin/event-to-remote-claim",
            &bin("event-to-remote-claim").display().to_string(),
        )
        .replace(
            "capabilities: [observe.cloud, propose.dynamicConfig]",
            &format!("capabilities: [observe.cloud, propose.dynamicConfig]\n        env: {{TUNNEL_INTERFACE: {wg}}}"),
        );
    for i in 0..n {
        let addr = format!("10.88.{}.{}", 100 + i / 250, 1 + i % 250);
        let _ = write!(
            text,
            "
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: RemoteAddressClaim
      metadata: {{name: bench-{i}}}
      spec:
        domainRef: cloudedge-same-subnet
        address: {addr}/32
        ownerSide: onprem
        capture: {{type: provider-secondary-ip, providerRef: example-provider, providerMode: secondary-ip, nicRef: nic}}
        delivery: {{peerRef: onprem-main, mode: route, tunnelInterface: {wg}}}
"
        );
    }
    text
}

fn main() {
    if !sh("id -u").stdout.starts_with(b"0")
        || !sh("command -v wireguard-go && command -v wg")
            .status
            .success()
        || !sh("ip netns add rdapplyprobe && ip netns del rdapplyprobe")
            .status
            .success()
    {
        println!("apply bench SKIPPED: needs root, ip netns, wg and wireguard-go");
        return;
    }
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let (ns, wg) = (format!("rdBench{tag}"), format!("wgBench{tag}"));
    let mut cleanup = Cleanup {
        ns: ns.clone(),
        wg: wg.clone(),
        daemon: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("peer.key");
    run(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    run(&format!("ip netns exec {ns} wireguard-go {wg}"));
    run(&format!(
        "wg genkey > {0} && wg genkey > {0}.own",
        key_file.display()
    ));
    let key = String::from_utf8_lossy(&sh(&format!("wg pubkey < {}", key_file.display())).stdout)
        .trim()
        .to_string();
    run(&format!(
        "ip netns exec {ns} wg set {wg} private-key {}.own peer {key} allowed-ips 169.254.110.1/32 && ip -n {ns} addr add 169.254.110.2/30 dev {wg} && ip -n {ns} link set {wg} up",
        key_file.display()
    ));
    let cfg = dir.path().join("router.yaml");
    let state = dir.path().join("routerd.db");
    std::fs::write(&cfg, config(&wg, &key, CLAIMS)).unwrap();
    let apply = |extra: &str| {
        format!(
            "ip netns exec {ns} {} apply --config {} --state-file {} {extra} >/dev/null",
            bin("routerd").display(),
            cfg.display(),
            state.display()
        )
    };

    // Baseline: the same kernel work done by iproute2 and one wg call.
    let mut batch = String::new();
    let mut allowed = vec!["169.254.110.1/32".to_string()];
    for i in 0..CLAIMS {
        let addr = format!("10.88.{}.{}", 100 + i / 250, 1 + i % 250);
        let _ = writeln!(
            batch,
            "route replace {addr}/32 dev {wg} metric 120 proto static"
        );
        allowed.push(format!("{addr}/32"));
    }
    let batch_file = dir.path().join("routes.batch");
    std::fs::write(&batch_file, batch).unwrap();
    let baseline = timed(&format!(
        "ip -n {ns} -batch {} && ip netns exec {ns} wg set {wg} peer {key} allowed-ips {}",
        batch_file.display(),
        allowed.join(",")
    ));
    assert_eq!(route_count(&ns), CLAIMS);
    run(&format!(
        "ip -n {ns} route flush proto static && ip netns exec {ns} wg set {wg} peer {key} allowed-ips 169.254.110.1/32"
    ));

    let dry = timed(&apply(""));
    let first = timed(&apply("--live"));
    assert_eq!(route_count(&ns), CLAIMS, "every route installed");
    let second = timed(&apply("--live"));
    let withdraw = {
        std::fs::write(&cfg, config(&wg, &key, 0)).unwrap();
        timed(&apply("--live --withdraw-grace 0s"))
    };
    assert_eq!(route_count(&ns), 0, "every route withdrawn");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("apply, {CLAIMS} claims (1,000 routes + 1,000 WireGuard allowed IPs), whole process:");
    println!(
        "  baseline ip -batch + one wg set   {:8.1} ms",
        ms(baseline)
    );
    println!(
        "  routerd apply (dry run)           {:8.1} ms  {:5.2}x",
        ms(dry),
        ms(dry) / ms(baseline)
    );
    println!(
        "  routerd apply --live (first)      {:8.1} ms  {:5.2}x",
        ms(first),
        ms(first) / ms(baseline)
    );
    println!(
        "  routerd apply --live (again)      {:8.1} ms  {:5.2}x",
        ms(second),
        ms(second) / ms(baseline)
    );
    println!(
        "  withdraw all (grace 0s)           {:8.1} ms  {:5.2}x",
        ms(withdraw),
        ms(withdraw) / ms(baseline)
    );

    // Latency with the daemon: emit → plugin → part → route.
    std::fs::write(&cfg, config(&wg, &key, 0)).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    cleanup.daemon = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(bin("routerd"))
            .args(["serve", "--live", "--withdraw-grace", "0s", "--config"])
            .arg(&cfg)
            .arg("--state-file")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut samples = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        let addr = format!("10.88.60.{}", 10 + i);
        let t = Instant::now();
        run(&format!(
            "{} federation event emit --state-file {} --group cloudedge --type routerd.client.ipv4.observed --subject {addr}/32 --source-node onprem-router --payload address={addr}/32 --payload domain=cloudedge-same-subnet --payload peerRef=onprem-main --ttl 30m >/dev/null",
            bin("routerctl").display(),
            state.display()
        ));
        let want = format!("{addr} dev {wg}");
        while !String::from_utf8_lossy(&sh(&format!("ip -n {ns} route show {addr}/32")).stdout)
            .contains(&want)
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "route {addr} never appeared"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: usize| ms(samples[(samples.len() - 1) * p / 100]);
    println!(
        "serve --live: emit -> route in the kernel ({LATENCY_SAMPLES} claims, one at a time):"
    );
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms  (Go routerd: up to ~30 s, its 30 s reconcile)",
        pct(50),
        pct(90),
        pct(100)
    );
}

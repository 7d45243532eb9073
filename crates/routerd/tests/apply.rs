//! The apply stage against a real host: cloud, on-prem and LAN-client network namespaces, a
//! veth underlay and a wireguard-go tunnel whose cloud-side peer allows only the on-prem
//! overlay address. Needs root, `ip`, `wg`, `wireguard-go` and `ping`; skips otherwise.

mod common;
use common::*;

use std::time::{Duration, Instant};

/// The LAN behind the on-prem router: namespace L with client 10.88.60.9 (and .10 as a second
/// address), routed by A.
fn add_lan(topo: &mut Topology) -> String {
    let lan = format!("rdL{}", topo.tag);
    let (va, vl) = (format!("lA{}", topo.tag), format!("lL{}", topo.tag));
    run(&format!("ip netns add {lan}"));
    topo.extra_ns.push(lan.clone());
    run(&format!("ip link add {va} type veth peer name {vl}"));
    run(&format!(
        "ip link set {va} netns {} && ip link set {vl} netns {lan}",
        topo.ns_a
    ));
    run(&format!(
        "ip -n {} addr add 10.88.60.1/24 dev {va} && ip -n {} link set {va} up",
        topo.ns_a, topo.ns_a
    ));
    run(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.ip_forward=1",
        topo.ns_a
    ));
    run(&format!("ip -n {lan} link set lo up && ip -n {lan} addr add 10.88.60.9/24 dev {vl} && ip -n {lan} addr add 10.88.60.10/24 dev {vl} && ip -n {lan} link set {vl} up && ip -n {lan} route add default via 10.88.60.1"));
    lan
}

/// The example cloud config on the tunnel device `wg`, its overlay peer keyed `peer_key`.
fn cloud_config(lab: &Lab, wg: &str, peer_key: &str) {
    let text = EXAMPLE
        .replace(PACKAGED_PLUGIN, &example_plugin().display().to_string())
        .replace(
            "capabilities: [observe.cloud, propose.dynamicConfig]",
            &format!("capabilities: [observe.cloud, propose.dynamicConfig]\n        env: {{TUNNEL_INTERFACE: {wg}}}"),
        )
        .replace("wg-hybrid", wg)
        .replace("ONPREM_PEER_PUBLIC_KEY_REPLACE_ME", peer_key);
    std::fs::write(lab.config(), text).unwrap();
}

fn in_ns(ns: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap()
}

/// `routerd apply` in `ns` with `extra` flags; returns (exit ok, stdout).
fn apply(lab: &Lab, ns: &str, extra: &[&str]) -> (bool, String) {
    let routerd = routerd().display().to_string();
    let (config, state) = (lab.config(), lab.state());
    let mut args = vec![
        routerd.as_str(),
        "apply",
        "--config",
        &config,
        "--state-file",
        &state,
    ];
    args.extend_from_slice(extra);
    let out = in_ns(ns, &args);
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

fn routes(ns: &str) -> String {
    text(&sh(&format!("ip -n {ns} route show")).stdout)
}

fn allowed_ips(ns: &str, wg: &str) -> String {
    text(&sh(&format!("ip netns exec {ns} wg show {wg} allowed-ips")).stdout)
}

fn pings(ns: &str, addr: &str) -> bool {
    sh(&format!("ip netns exec {ns} ping -c 1 -W 2 {addr}"))
        .status
        .success()
}

fn emit_client(lab: &Lab, addr: &str, id: &str) {
    let subject = format!("{addr}/32");
    let payload = format!("address={addr}/32");
    let out = lab.emit(&["--id", id, "--subject", &subject, "--payload", &payload]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn dry_run_then_live_then_withdrawal_across_a_wireguard_tunnel() {
    if let Some(why) = netns_unavailable(&["ip", "wg", "wireguard-go", "ping"]) {
        eprintln!("SKIPPED dry_run_then_live_then_withdrawal: {why}");
        return;
    }
    let cloud = Lab::new();
    let mut topo = Topology::build(&cloud, "a");
    let lan = add_lan(&mut topo);
    let (ns, wg) = (topo.ns_b.clone(), topo.wg_b.clone());
    cloud_config(&cloud, &wg, &topo.pub_a);

    // Two clients observed on-prem, recorded on the cloud node; the plugin turns them into claims.
    emit_client(&cloud, "10.88.60.9", "evt-9");
    emit_client(&cloud, "10.88.60.10", "evt-10");
    let once = in_ns(
        &ns,
        &[
            &routerd().display().to_string(),
            "serve",
            "--once",
            "--config",
            &cloud.config(),
            "--state-file",
            &cloud.state(),
        ],
    );
    let once_out = text(&once.stdout);
    assert!(once.status.success(), "{once_out}{}", text(&once.stderr));
    assert!(once_out.contains("DRY RUN"), "{once_out}");
    // A route to .10 was there before routerd: it must survive the withdrawal.
    run(&format!(
        "ip -n {ns} route replace 10.88.60.10/32 dev {wg} metric 120"
    ));
    let routes_before = routes(&ns);
    let allowed_before = allowed_ips(&ns, &wg);
    assert!(!pings(&ns, "10.88.60.9"), "no route to the client yet");

    // Dry run: the plan, as commands, and no change.
    let (ok, out) = apply(&cloud, &ns, &[]);
    assert!(ok, "{out}");
    assert!(out.starts_with("DRY RUN"), "{out}");
    assert!(
        out.contains(&format!(
            "would run  ip route replace 10.88.60.9/32 dev {wg} metric 120"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "in place   ip route replace 10.88.60.10/32 dev {wg} metric 120"
        )),
        "{out}"
    );
    // Each `wg set` builds on the one before, so running them in order is right.
    let wg_set = format!("would run  wg set {wg} peer {} allowed-ips ", topo.pub_a);
    let in_order = |x: &str, y: &str| {
        out.contains(&format!("{wg_set}169.254.110.1/32,{x}\n"))
            && out.contains(&format!("{wg_set}169.254.110.1/32,{x},{y}\n"))
    };
    assert!(
        in_order("10.88.60.9/32", "10.88.60.10/32") || in_order("10.88.60.10/32", "10.88.60.9/32"),
        "{out}"
    );
    let (ok, json) = apply(&cloud, &ns, &["--dry-run", "--once", "-o", "json"]);
    assert!(ok, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["live"], false);
    let nine = report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "10.88.60.9/32")
        .unwrap();
    assert_eq!(nine["phase"], "Planned");
    assert_eq!(nine["actions"][0]["state"], "wouldRun");
    assert_eq!(nine["actions"][0]["action"]["type"], "route");
    assert_eq!(routes(&ns), routes_before, "a dry run changes no route");
    assert_eq!(allowed_ips(&ns, &wg), allowed_before, "nor WireGuard");

    // Live: route and allowed IP installed; the cloud reaches the LAN client through the tunnel.
    let (ok, out) = apply(&cloud, &ns, &["--live"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("LIVE"), "{out}");
    let r = routes(&ns);
    assert!(
        r.contains(&format!(
            "10.88.60.9 dev {wg} proto static scope link metric 120"
        )),
        "{r}"
    );
    let a = allowed_ips(&ns, &wg);
    assert!(
        a.contains("169.254.110.1/32")
            && a.contains("10.88.60.9/32")
            && a.contains("10.88.60.10/32"),
        "{a}"
    );
    assert!(
        pings(&ns, "10.88.60.9"),
        "the cloud pings the LAN client across the tunnel"
    );
    assert!(pings(&ns, "10.88.60.10"));

    // A second live pass changes nothing.
    let (ok, json) = apply(&cloud, &ns, &["--live", "-o", "json"]);
    assert!(ok, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let states: Vec<&str> = report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["actions"].as_array().unwrap())
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["inPlace"; 4], "{json}");
    let claims = cloud.json(&["claims", "--state-file", &cloud.state(), "-o", "json"]);
    let phases: Vec<&str> = claims
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, vec!["Installed", "Installed"], "{claims}");
    let table = text(
        &cloud
            .ctl(&["claims", "--state-file", &cloud.state()])
            .stdout,
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("onprem-10-88-60-9 "))
        .unwrap_or_default();
    assert!(
        row.contains("Installed") && row.contains("route=inPlace allowed-ip=inPlace"),
        "{table}"
    );

    // The parts go; with the default grace nothing is withdrawn yet.
    for p in cloud.parts() {
        let source = p["source"].as_str().unwrap();
        let out = cloud.ctl(&["dynamic", "delete", source, "--state-file", &cloud.state()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let (ok, out) = apply(&cloud, &ns, &["--live"]);
    assert!(ok, "{out}");
    assert!(out.contains("withdraw at "), "{out}");
    assert!(
        routes(&ns).contains("10.88.60.9 dev"),
        "still inside the grace period"
    );
    let claims = cloud.json(&["claims", "--state-file", &cloud.state(), "-o", "json"]);
    assert_eq!(claims[0]["phase"], "Withdrawing", "{claims}");
    assert!(claims[0]["withdrawingUntil"].is_string(), "{claims}");
    let table = text(
        &cloud
            .ctl(&["claims", "--state-file", &cloud.state()])
            .stdout,
    );
    assert!(
        table.contains("Withdrawing") && table.contains("allowed-ip=installed route=installed"),
        "{table}"
    );
    assert!(table.contains("withdrawing until "), "{table}");
    // .10's route was there before routerd: it is not routerd's to withdraw.
    let ten = table
        .lines()
        .find(|l| l.starts_with("onprem-10-88-60-10 "))
        .unwrap_or_default();
    assert!(
        ten.contains("allowed-ip=installed") && !ten.contains("route="),
        "{table}"
    );

    // Grace 0s: what routerd installed goes; what was there before stays; the overlay works.
    let (ok, out) = apply(&cloud, &ns, &["--live", "--withdraw-grace", "0s"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "withdrawn  ip route del 10.88.60.9/32 dev {wg} metric 120"
        )),
        "{out}"
    );
    let r = routes(&ns);
    assert!(!r.contains("10.88.60.9 dev"), "{r}");
    assert!(
        r.contains(&format!("10.88.60.10 dev {wg}")),
        "the route that was there before stays: {r}"
    );
    let a = allowed_ips(&ns, &wg);
    assert!(
        a.contains("169.254.110.1/32") && !a.contains("10.88.60."),
        "{a}"
    );
    assert!(pings(&ns, "169.254.110.1"), "the overlay still works");
    assert!(
        !pings(&ns, "10.88.60.9"),
        "the client is no longer reachable"
    );
    let (ok, out) = apply(&cloud, &ns, &["--live", "--withdraw-grace", "0s"]);
    assert!(
        ok && !out.contains("withdraw"),
        "nothing left to withdraw: {out}"
    );
    drop(lan);
}

#[test]
fn a_missing_device_is_pending_not_a_crash() {
    if let Some(why) = netns_unavailable(&["ip"]) {
        eprintln!("SKIPPED a_missing_device_is_pending: {why}");
        return;
    }
    let lab = Lab::new();
    let ns = format!("rdM{:x}", std::process::id() % 0xfffff);
    run(&format!("ip netns add {ns}"));
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = sh(&format!("ip netns del {}", self.0));
        }
    }
    let _cleanup = Cleanup(ns.clone());
    cloud_config(
        &lab,
        "wgnothere0",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    emit_client(&lab, "10.88.60.9", "evt-9");
    let once = lab.serve_once();
    assert!(once.status.success(), "{}", text(&once.stderr));
    for extra in [&[][..], &["--live"][..]] {
        let (ok, out) = apply(&lab, &ns, extra);
        assert!(ok, "Pending is not a failure: {out}");
        assert!(
            out.contains("RemoteAddressClaim onprem-10-88-60-9 (10.88.60.9/32): Pending (DeviceNotReady): delivery device wgnothere0 does not exist"),
            "{out}"
        );
    }
    let claims = lab.json(&["claims", "--state-file", &lab.state(), "-o", "json"]);
    assert_eq!(claims[0]["phase"], "Pending", "{claims}");
    assert_eq!(claims[0]["reason"], "DeviceNotReady", "{claims}");
}

/// The daemon applies a new part within a second and withdraws it after the grace period.
#[test]
fn serve_live_applies_new_parts_and_withdraws_deleted_ones() {
    if let Some(why) = netns_unavailable(&["ip"]) {
        eprintln!("SKIPPED serve_live_applies_new_parts: {why}");
        return;
    }
    let lab = Lab::new();
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let (ns, dev) = (format!("rdS{tag}"), format!("vS{tag}"));
    run(&format!(
        "ip netns add {ns} && ip -n {ns} link add {dev} type veth peer name {dev}p && ip -n {ns} link set {dev} up && ip -n {ns} link set {dev}p up"
    ));
    struct Cleanup(String, Option<std::process::Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(c) = &mut self.1 {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = sh(&format!("ip netns del {}", self.0));
        }
    }
    let mut cleanup = Cleanup(ns.clone(), None);
    // A plain (non-WireGuard) tunnel device: only the route is planned. No receiver here.
    cloud_config(&lab, &dev, "unused");
    let config = std::fs::read_to_string(lab.config()).unwrap();
    let config = config
        .replace(
            "address: 169.254.110.2\n          port: 8787",
            "address: ''\n          port: 0",
        )
        .replace(&format!("name: {dev}\n"), "name: unusedwg\n")
        .replace(
            &format!("interface: {dev}\n        publicKey"),
            "interface: unusedwg\n        publicKey",
        );
    std::fs::write(lab.config(), &config).unwrap();
    cleanup.1 = Some(lab.spawn_serve_with(
        Some(&ns),
        "serve.log",
        &["--live", "--withdraw-grace", "0s"],
    ));
    let log = || std::fs::read_to_string(lab.path("serve.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || log()
            .contains("apply stage running (live")),
        "{}",
        log()
    );

    let start = Instant::now();
    emit_client(&lab, "10.88.60.9", "evt-9");
    let has_route = || routes(&ns).contains(&format!("10.88.60.9 dev {dev}"));
    assert!(wait_until(Duration::from_secs(15), has_route), "{}", log());
    eprintln!("event to live route: {:?}", start.elapsed());
    // The pass logs once it is complete, just after the kernel has the route.
    let applied = format!("applied: ip route replace 10.88.60.9/32 dev {dev} metric 120");
    assert!(
        wait_until(Duration::from_secs(5), || log().contains(&applied)),
        "{}",
        log()
    );

    for p in lab.parts() {
        let out = lab.ctl(&[
            "dynamic",
            "delete",
            p["source"].as_str().unwrap(),
            "--state-file",
            &lab.state(),
        ]);
        assert!(out.status.success());
    }
    assert!(
        wait_until(Duration::from_secs(5), || !has_route()),
        "withdrawn within a second or so: {}",
        log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || log()
            .contains("withdrawn: ip route del 10.88.60.9/32")),
        "{}",
        log()
    );
}

/// proxy-arp and provider-secondary-ip captures on a real kernel: the proxy neighbour entry is
/// installed and withdrawn; an address the OS must not own is removed (and not put back).
#[test]
fn captures_install_a_proxy_entry_and_remove_an_owned_address() {
    if let Some(why) = netns_unavailable(&["ip"]) {
        eprintln!("SKIPPED captures_install_a_proxy_entry: {why}");
        return;
    }
    let lab = Lab::new();
    let tag = format!("{:x}", std::process::id() % 0xfffff);
    let (ns, lan, tun) = (format!("rdC{tag}"), format!("cL{tag}"), format!("cT{tag}"));
    run(&format!("ip netns add {ns}"));
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = sh(&format!("ip netns del {}", self.0));
        }
    }
    let _cleanup = Cleanup(ns.clone());
    run(&format!("ip -n {ns} link add {lan} type veth peer name {tun} && ip -n {ns} link set {lan} up && ip -n {ns} link set {tun} up"));
    run(&format!("ip -n {ns} addr add 10.88.60.21/24 dev {lan}"));
    let claims = format!(
        "
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: RemoteAddressClaim
      metadata: {{name: lan-proxy}}
      spec:
        domainRef: cloudedge-same-subnet
        address: 10.88.60.20/32
        ownerSide: onprem
        capture: {{type: proxy-arp, interface: {lan}}}
        delivery: {{peerRef: onprem-main, mode: route, tunnelInterface: {tun}}}
    - apiVersion: hybrid.routerd.net/v1alpha1
      kind: RemoteAddressClaim
      metadata: {{name: cloud-secondary}}
      spec:
        domainRef: cloudedge-same-subnet
        address: 10.88.60.21/32
        ownerSide: onprem
        capture: {{type: provider-secondary-ip, providerRef: example-provider, providerMode: secondary-ip, nicRef: nic}}
        delivery: {{peerRef: onprem-main, mode: route, tunnelInterface: {tun}}}
"
    );
    lab.write_config(&example_plugin(), "10s");
    let base = std::fs::read_to_string(lab.config()).unwrap();
    std::fs::write(lab.config(), format!("{base}{claims}")).unwrap();

    let (ok, out) = apply(&lab, &ns, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "would run  ip neigh replace proxy 10.88.60.20 dev {lan}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("would run  ip addr del 10.88.60.21/24 dev {lan}")),
        "{out}"
    );

    let (ok, out) = apply(&lab, &ns, &["--live", "--withdraw-grace", "0s"]);
    assert!(ok, "{out}");
    let proxies = text(&sh(&format!("ip -n {ns} neigh show proxy")).stdout);
    assert!(
        proxies.contains(&format!("10.88.60.20 dev {lan}")),
        "{proxies}\n{out}"
    );
    let addrs = text(&sh(&format!("ip -n {ns} -4 addr show dev {lan}")).stdout);
    assert!(
        !addrs.contains("10.88.60.21"),
        "the OS must not own the address: {addrs}"
    );
    let r = routes(&ns);
    assert!(
        r.contains(&format!("10.88.60.20 dev {tun}"))
            && r.contains(&format!("10.88.60.21 dev {tun}")),
        "{r}"
    );
    let (ok, again) = apply(&lab, &ns, &["--live", "-o", "json"]);
    assert!(
        ok && !again.contains("\"applied\""),
        "nothing left to do: {again}"
    );

    // The claims go: routes and the proxy entry are withdrawn; the address is not put back.
    std::fs::write(lab.config(), &base).unwrap();
    let (ok, out) = apply(&lab, &ns, &["--live", "--withdraw-grace", "0s"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "withdrawn  ip neigh del proxy 10.88.60.20 dev {lan}"
        )),
        "{out}"
    );
    let proxies = text(&sh(&format!("ip -n {ns} neigh show proxy")).stdout);
    assert!(!proxies.contains("10.88.60.20"), "{proxies}");
    let r = routes(&ns);
    assert!(
        !r.contains("10.88.60.20") && !r.contains("10.88.60.21 dev"),
        "{r}"
    );
    let addrs = text(&sh(&format!("ip -n {ns} -4 addr show dev {lan}")).stdout);
    assert!(!addrs.contains("10.88.60.21"), "{addrs}");
}

//! Two routers in network namespaces joined by a veth underlay and a real WireGuard tunnel
//! (wireguard-go + wg). The receiver binds its overlay address and device only.
//! Needs root, `ip`, `wg` and `wireguard-go`; skips with the reason otherwise.

mod common;
use common::*;

use std::process::Command;
use std::time::Duration;

fn write_secret(lab: &Lab) -> String {
    let p = lab.path("cloudedge.key");
    std::fs::write(&p, "overlay-test-secret\n").unwrap();
    run(&format!("chmod 600 {}", p.display()));
    p.display().to_string()
}

/// Can `ns` open a TCP connection to addr:port?
fn connects(ns: &str, addr: &str, port: u16) -> bool {
    sh(&format!(
        "ip netns exec {ns} timeout 3 bash -c 'exec 3<>/dev/tcp/{addr}/{port}'"
    ))
    .status
    .success()
}

#[test]
fn emit_to_claim_across_a_wireguard_overlay_and_no_underlay_access() {
    if let Some(why) = netns_unavailable(&["ip", "wg", "wireguard-go"]) {
        eprintln!("SKIPPED emit_to_claim_across_a_wireguard_overlay: {why}");
        return;
    }
    let (a, b) = (Lab::new(), Lab::new());
    let mut topo = Topology::build(&b, "o");

    // Cloud (B): the example config with its real overlay address 169.254.110.2:8787.
    let secret_b = write_secret(&b);
    let config_b = EXAMPLE
        .replace(PACKAGED_PLUGIN, &example_plugin().display().to_string())
        .replace("/etc/routerd/secrets/cloudedge.key", &secret_b);
    std::fs::write(b.config(), config_b).unwrap();
    // On-prem (A): pushes to the cloud over the tunnel.
    let secret_a = write_secret(&a);
    std::fs::write(
        a.config(),
        format!(
            "apiVersion: routerd.net/v1alpha1
kind: Router
metadata: {{name: onprem}}
spec:
  resources:
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventGroup
      metadata: {{name: cloudedge}}
      spec: {{nodeName: onprem-router, auth: {{mode: hmac, secretFile: {secret_a}}}}}
    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventPeer
      metadata: {{name: cloud-router}}
      spec: {{groupRef: cloudedge, nodeName: cloud-router, endpoint: 'http://169.254.110.2:8787'}}
"
        ),
    )
    .unwrap();

    topo.children.push(b.spawn_serve(Some(&topo.ns_b), "b.log"));
    let log_b = || std::fs::read_to_string(b.path("b.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || log_b()
            .contains("receiver listening")),
        "{}",
        log_b()
    );
    assert!(
        log_b().contains(&format!("device={}", topo.wg_b)),
        "bound to the tunnel device: {}",
        log_b()
    );
    topo.children.push(a.spawn_serve(Some(&topo.ns_a), "a.log"));

    assert!(a.emit(&["--id", "evt-overlay"]).status.success());
    assert!(
        wait_until(Duration::from_secs(10), || {
            let out = b.render();
            out.status.success() && claims(&out.stdout).len() == 1
        }),
        "A: {}\nB: {}",
        std::fs::read_to_string(a.path("a.log")).unwrap_or_default(),
        log_b()
    );

    // The overlay reaches the receiver; the underlay does not, even when routed to its address.
    assert!(
        connects(&topo.ns_a, "169.254.110.2", 8787),
        "reachable through the tunnel"
    );
    assert!(
        !connects(&topo.ns_a, "198.18.0.2", 8787),
        "not on the underlay address"
    );
    run(&format!(
        "ip netns exec {} ip route add 169.254.110.2/32 via 198.18.0.2 dev {}",
        topo.ns_a, topo.veth_a
    ));
    // Control: an ordinary listener on the overlay address *is* reachable over the underlay route.
    let mut control = Command::new("ip")
        .args(["netns", "exec", &topo.ns_b, "python3", "-c"])
        .arg("import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('169.254.110.2', 8788)); s.listen(); time.sleep(30)")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let control_reached = connects(&topo.ns_a, "169.254.110.2", 8788);
    let _ = control.kill();
    let _ = control.wait();
    assert!(
        control_reached,
        "the underlay route works for an unbound listener"
    );
    assert!(
        !connects(&topo.ns_a, "169.254.110.2", 8787),
        "SO_BINDTODEVICE keeps the receiver off the underlay"
    );
}

//! A WireGuard overlay between two network namespaces, for tests that need a real tunnel.

use std::process::Child;
use std::time::Duration;

use super::*;

/// Namespaces, links and tunnels of one test, removed when dropped.
pub struct Topology {
    pub ns_a: String,
    pub ns_b: String,
    pub wg_a: String,
    pub wg_b: String,
    pub veth_a: String,
    /// WireGuard public keys of A and B.
    pub pub_a: String,
    pub pub_b: String,
    /// Extra namespaces a test added (deleted first).
    pub extra_ns: Vec<String>,
    /// Tag that makes this topology's names unique.
    pub tag: String,
    pub children: Vec<Child>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.extra_ns {
            let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
        }
        let _ = sh(&format!(
            "ip netns exec {} ip link del {} 2>/dev/null",
            self.ns_a, self.wg_a
        ));
        let _ = sh(&format!(
            "ip netns exec {} ip link del {} 2>/dev/null",
            self.ns_b, self.wg_b
        ));
        let _ = sh(&format!(
            "ip netns del {} 2>/dev/null; ip netns del {} 2>/dev/null",
            self.ns_a, self.ns_b
        ));
        let _ = sh(&format!(
            "rm -f /var/run/wireguard/{}.sock /var/run/wireguard/{}.sock",
            self.wg_a, self.wg_b
        ));
    }
}

impl Topology {
    /// Two namespaces joined by a veth underlay (198.18.0.1 ↔ .2) and a WireGuard tunnel:
    /// 169.254.110.1 (A, on-prem) ↔ 169.254.110.2 (B, cloud), each peer allowing only the other's
    /// overlay address. `prefix` keeps the names of tests in one process apart.
    pub fn build(lab: &Lab, prefix: &str) -> Topology {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{prefix}{:x}{n}", std::process::id() % 0xfffff);
        let mut t = Topology {
            ns_a: format!("rdA{tag}"),
            ns_b: format!("rdB{tag}"),
            wg_a: format!("wgA{tag}"),
            wg_b: format!("wgB{tag}"),
            veth_a: format!("vA{tag}"),
            pub_a: String::new(),
            pub_b: String::new(),
            extra_ns: vec![],
            tag: tag.clone(),
            children: vec![],
        };
        let veth_b = format!("vB{tag}");
        run(&format!(
            "ip netns add {} && ip netns add {}",
            t.ns_a, t.ns_b
        ));
        run(&format!(
            "ip link add {} type veth peer name {veth_b}",
            t.veth_a
        ));
        run(&format!(
            "ip link set {} netns {} && ip link set {veth_b} netns {}",
            t.veth_a, t.ns_a, t.ns_b
        ));
        for (ns, dev, ip) in [
            (&t.ns_a, &t.veth_a, "198.18.0.1/24"),
            (&t.ns_b, &veth_b, "198.18.0.2/24"),
        ] {
            run(&format!("ip netns exec {ns} ip link set lo up"));
            run(&format!("ip netns exec {ns} ip addr add {ip} dev {dev} && ip netns exec {ns} ip link set {dev} up"));
        }
        // Keys and the tunnel: 169.254.110.1 (on-prem) <-> 169.254.110.2 (cloud).
        let key = |name: &str| {
            let private = lab.path(name);
            run(&format!("umask 077; wg genkey > {}", private.display()));
            let public = text(&sh(&format!("wg pubkey < {}", private.display())).stdout)
                .trim()
                .to_string();
            (private, public)
        };
        let (priv_a, pub_a) = key("wg-a.key");
        let (priv_b, pub_b) = key("wg-b.key");
        t.pub_a = pub_a.clone();
        t.pub_b = pub_b.clone();
        for (ns, wg, private, port, peer, endpoint, addr, allowed) in [
            (
                &t.ns_a,
                &t.wg_a,
                &priv_a,
                51820,
                &pub_b,
                "198.18.0.2:51821",
                "169.254.110.1/30",
                "169.254.110.2/32",
            ),
            (
                &t.ns_b,
                &t.wg_b,
                &priv_b,
                51821,
                &pub_a,
                "198.18.0.1:51820",
                "169.254.110.2/30",
                "169.254.110.1/32",
            ),
        ] {
            run(&format!("ip netns exec {ns} wireguard-go {wg}"));
            run(&format!(
            "ip netns exec {ns} wg set {wg} private-key {} listen-port {port} peer {peer} endpoint {endpoint} allowed-ips {allowed} persistent-keepalive 1",
            private.display()
        ));
            run(&format!("ip netns exec {ns} ip addr add {addr} dev {wg} && ip netns exec {ns} ip link set {wg} up"));
        }
        // Up when the peers have shaken hands (keepalive 1 s starts it).
        let handshake = || {
            let out = sh(&format!(
                "ip netns exec {} wg show {} latest-handshakes",
                t.ns_a, t.wg_a
            ));
            text(&out.stdout)
                .split_whitespace()
                .nth(1)
                .is_some_and(|ts| ts != "0")
        };
        assert!(
            wait_until(Duration::from_secs(10), handshake),
            "the WireGuard tunnel never came up"
        );
        t
    }
}

//! The plan against a hand-made host view, on the example receiver config.

use std::net::{IpAddr, Ipv4Addr};

use routerd_apply::plan::{
    plan, safe_name, wireguard_interfaces, Action, HostAddress, HostRoute, HostView, WgPeer,
};
use routerd_model::kinds::*;
use routerd_model::{Resource, Router, Spec};

const KEY: &str = "gDQIBshJytvsGkvLiIRPCDfxoTpk0GAAypJMG4PHFgg=";

fn startup() -> Router {
    let text = include_str!("../../../examples/receiver-cloud.yaml")
        .replace("ONPREM_PEER_PUBLIC_KEY_REPLACE_ME", KEY);
    routerd_model::load_str(&text, "receiver").unwrap().router
}

fn claim(name: &str, addr: &str, f: impl FnOnce(&mut RemoteAddressClaimSpec)) -> Resource {
    let mut spec = RemoteAddressClaimSpec {
        domain_ref: "cloudedge-same-subnet".into(),
        address: addr.into(),
        owner_side: "onprem".into(),
        capture: ClaimCapture {
            capture_type: "provider-secondary-ip".into(),
            provider_ref: "example-provider".into(),
            provider_mode: "secondary-ip".into(),
            nic_ref: "example-nic-ref".into(),
            ..Default::default()
        },
        delivery: ClaimDelivery {
            peer_ref: "onprem-main".into(),
            mode: "route".into(),
            tunnel_interface: "wg-hybrid".into(),
        },
    };
    f(&mut spec);
    Resource::new(name, Spec::RemoteAddressClaim(spec))
}

fn with(claims: Vec<Resource>) -> Router {
    let mut r = startup();
    r.spec.resources.extend(claims);
    r
}

fn peer(allowed: &[&str]) -> WgPeer {
    WgPeer {
        public_key: KEY.into(),
        allowed_ips: allowed
            .iter()
            .map(|a| {
                let (ip, len) = a.split_once('/').unwrap();
                (ip.parse::<IpAddr>().unwrap(), len.parse().unwrap())
            })
            .collect(),
    }
}

/// A cloud host with wg-hybrid (peer allowing only the overlay address), eth0 and br-lan.
fn host() -> HostView {
    let mut h = HostView::default();
    for (i, n) in ["lo", "eth0", "wg-hybrid", "br-lan"].iter().enumerate() {
        h.links.insert(n.to_string(), i as u32 + 1);
    }
    h.wireguard
        .insert("wg-hybrid".into(), Ok(vec![peer(&["169.254.110.1/32"])]));
    h
}

fn commands(p: &routerd_apply::ClaimPlan) -> Vec<(String, bool)> {
    p.actions
        .iter()
        .map(|a| (a.action.command(), a.in_place))
        .collect()
}

#[test]
fn a_claim_needs_a_route_and_an_allowed_ip() {
    let r = with(vec![claim("onprem-10-88-60-9", "10.88.60.9/32", |_| {})]);
    let plans = plan(&r, Some(&host()));
    assert_eq!(plans.len(), 1);
    let p = &plans[0];
    assert_eq!(p.problem, None);
    assert_eq!(p.route_name, "sam-onprem-10-88-60-9-delivery");
    assert_eq!(
        commands(p),
        vec![
            (
                "ip route replace 10.88.60.9/32 dev wg-hybrid metric 120".into(),
                false
            ),
            (
                format!("wg set wg-hybrid peer {KEY} allowed-ips 169.254.110.1/32,10.88.60.9/32"),
                false
            ),
        ]
    );
    assert_eq!(
        p.actions[0].action.key(),
        "route 10.88.60.9/32 dev wg-hybrid metric 120"
    );
    assert_eq!(
        p.actions[1]
            .action
            .undo_command(Some(&["169.254.110.1/32".into()])),
        Some(format!(
            "wg set wg-hybrid peer {KEY} allowed-ips 169.254.110.1/32"
        ))
    );
}

#[test]
fn what_the_host_already_has_is_in_place() {
    let r = with(vec![claim("c", "10.88.60.9/32", |_| {})]);
    let mut h = host();
    h.routes.push(HostRoute {
        destination: Ipv4Addr::new(10, 88, 60, 9),
        prefix_len: 32,
        device: "wg-hybrid".into(),
        metric: 120,
    });
    // A covering /24 counts: nothing to add.
    h.wireguard.insert(
        "wg-hybrid".into(),
        Ok(vec![peer(&["169.254.110.1/32", "10.88.60.0/24"])]),
    );
    let p = &plan(&r, Some(&h))[0];
    assert!(p.actions.iter().all(|a| a.in_place), "{p:?}");

    // Same destination at another metric or on another device is not the delivery route.
    h.routes[0].metric = 100;
    let p = &plan(&r, Some(&h))[0];
    assert!(!p.actions[0].in_place);
}

#[test]
fn the_owned_address_is_removed_for_provider_secondary_ip() {
    let r = with(vec![claim("c", "10.88.60.9/32", |_| {})]);
    let mut h = host();
    h.addresses.push(HostAddress {
        interface: "eth0".into(),
        address: Ipv4Addr::new(10, 88, 60, 9),
        prefix_len: 24,
    });
    let p = &plan(&r, Some(&h))[0];
    assert_eq!(
        p.actions.last().unwrap().action.command(),
        "ip addr del 10.88.60.9/24 dev eth0"
    );
    assert!(!p.actions.last().unwrap().action.is_withdrawable());
}

#[test]
fn proxy_arp_installs_a_proxy_neighbour_and_waits_for_its_interface() {
    let r = with(vec![claim("c", "10.88.60.9/32", |c| {
        c.capture = ClaimCapture {
            capture_type: "proxy-arp".into(),
            interface: "br-lan".into(),
            ..Default::default()
        }
    })]);
    let mut h = host();
    let p = &plan(&r, Some(&h))[0];
    assert_eq!(
        p.actions.last().unwrap().action,
        Action::ProxyNeighbour {
            address: Ipv4Addr::new(10, 88, 60, 9),
            interface: "br-lan".into()
        }
    );
    assert_eq!(
        p.actions.last().unwrap().action.command(),
        "ip neigh replace proxy 10.88.60.9 dev br-lan"
    );
    h.proxies
        .insert((Ipv4Addr::new(10, 88, 60, 9), "br-lan".into()));
    assert!(plan(&r, Some(&h))[0].actions.last().unwrap().in_place);
    h.links.remove("br-lan");
    let p = &plan(&r, Some(&h))[0];
    let problem = p.problem.as_ref().unwrap();
    assert!(problem.pending);
    assert_eq!(problem.reason, "CaptureInterfaceNotReady");
}

#[test]
fn a_missing_device_is_pending_and_does_not_stop_other_claims() {
    let r = with(vec![
        claim("gone", "10.88.60.8/32", |c| {
            c.delivery.tunnel_interface = "wg-nothere".into()
        }),
        claim("ok", "10.88.60.9/32", |_| {}),
    ]);
    let plans = plan(&r, Some(&host()));
    let problem = plans[0].problem.as_ref().unwrap();
    assert_eq!((problem.pending, problem.reason), (true, "DeviceNotReady"));
    assert_eq!(problem.message, "delivery device wg-nothere does not exist");
    assert!(plans[0].actions.is_empty());
    assert_eq!(plans[1].problem, None);
    assert_eq!(plans[1].actions.len(), 2);
}

#[test]
fn collisions_are_errors_for_the_later_claim_only() {
    let r = with(vec![
        claim("a_b", "10.88.60.9/32", |_| {}),
        claim("a-b", "10.88.60.10/32", |_| {}),
        claim("other", "10.88.60.9/32", |_| {}),
    ]);
    let plans = plan(&r, Some(&host()));
    assert_eq!(plans[0].problem, None);
    let p1 = plans[1].problem.as_ref().unwrap();
    assert_eq!((p1.pending, p1.reason), (false, "RouteNameNotUnique"));
    assert!(
        p1.message.contains("\"sam-a-b-delivery\" is not unique"),
        "{}",
        p1.message
    );
    let p2 = plans[2].problem.as_ref().unwrap();
    assert_eq!(p2.reason, "DestinationCollision");
    assert!(
        p2.message.contains("collides with RemoteAddressClaim/a_b"),
        "{}",
        p2.message
    );
}

#[test]
fn the_overlay_peer_gives_the_device_when_there_is_no_tunnel_interface() {
    let r = with(vec![
        claim("via-peer", "10.88.60.9/32", |c| {
            c.delivery.tunnel_interface = String::new();
            c.delivery.peer_ref = "OverlayPeer/onprem-main".into();
        }),
        claim("no-peer", "10.88.60.10/32", |c| {
            c.delivery.tunnel_interface = String::new();
            c.delivery.peer_ref = "nobody".into();
        }),
    ]);
    let plans = plan(&r, Some(&host()));
    assert_eq!(
        plans[0].actions[0].action.command(),
        "ip route replace 10.88.60.9/32 dev wg-hybrid metric 120"
    );
    let p = plans[1].problem.as_ref().unwrap();
    assert_eq!(p.reason, "OverlayPeerMissing");
    assert!(
        p.message
            .ends_with("spec.delivery.peerRef references missing OverlayPeer \"nobody\""),
        "{}",
        p.message
    );
}

#[test]
fn wireguard_peer_problems() {
    let r = with(vec![claim("c", "10.88.60.9/32", |_| {})]);
    // The peer's key is not on the live interface.
    let mut h = host();
    h.wireguard.insert(
        "wg-hybrid".into(),
        Ok(vec![WgPeer {
            public_key: "other".into(),
            allowed_ips: vec![],
        }]),
    );
    let p = plan(&r, Some(&h)).remove(0).problem.unwrap();
    assert_eq!((p.pending, p.reason), (true, "PeerNotReady"));
    // The interface cannot be read as WireGuard.
    h.wireguard
        .insert("wg-hybrid".into(), Err("No such file or directory".into()));
    let p = plan(&r, Some(&h)).remove(0).problem.unwrap();
    assert_eq!((p.pending, p.reason), (true, "WireGuardNotReady"));

    // Two peers on the interface and neither is named like peerRef.
    let mut r2 = with(vec![claim("c", "10.88.60.9/32", |_| {})]);
    for res in r2.spec.resources.iter_mut() {
        if res.kind == "WireGuardPeer" {
            res.metadata.name = "renamed".into();
        }
    }
    let mut second = r2.find("WireGuardPeer", "renamed").unwrap().clone();
    second.metadata.name = "second".into();
    r2.spec.resources.push(second);
    let p = plan(&r2, Some(&host())).remove(0).problem.unwrap();
    assert_eq!((p.pending, p.reason), (false, "PeerAmbiguous"));
    // With one of them the only peer on the interface, it is the delivery peer.
    r2.spec.resources.retain(|r| r.metadata.name != "second");
    assert_eq!(plan(&r2, Some(&host()))[0].problem, None);
}

#[test]
fn an_unreadable_host_plans_every_action_from_the_config() {
    let r = with(vec![claim("c", "10.88.60.9/32", |_| {})]);
    let p = &plan(&r, None)[0];
    assert_eq!(p.problem, None);
    assert!(p.actions.iter().all(|a| !a.in_place));
    assert_eq!(
        p.actions[1].action.command(),
        format!(
            "wg set wg-hybrid peer {KEY} allowed-ips 169.254.110.1/32,10.88.60.0/24,10.88.60.9/32"
        )
    );
}

#[test]
fn safe_names_follow_go() {
    assert_eq!(safe_name("onprem-10-88-60-9"), "onprem-10-88-60-9");
    assert_eq!(safe_name("a_b"), "a-b");
    assert_eq!(safe_name("__x  y..__"), "x-y");
    assert_eq!(safe_name("+++"), "claim");
    assert_eq!(safe_name(""), "claim");
    assert_eq!(safe_name("v1.2"), "v1.2");
}

#[test]
fn the_plan_reads_wireguard_only_where_it_may_need_it() {
    let r = with(vec![claim("c", "10.88.60.9/32", |c| {
        c.delivery.tunnel_interface = "wg-other".into()
    })]);
    let wanted: Vec<String> = wireguard_interfaces(&r).into_iter().collect();
    assert_eq!(
        wanted,
        vec!["wg-hybrid".to_string(), "wg-other".to_string()]
    );
}

#[test]
fn proxy_entries_are_put_in_again_where_an_address_is_removed() {
    let r = with(vec![
        claim("proxy", "10.88.60.20/32", |c| {
            c.capture = ClaimCapture {
                capture_type: "proxy-arp".into(),
                interface: "br-lan".into(),
                ..Default::default()
            }
        }),
        claim("secondary", "10.88.60.21/32", |_| {}),
    ]);
    let mut h = host();
    h.proxies
        .insert((Ipv4Addr::new(10, 88, 60, 20), "br-lan".into()));
    let proxy_in_place = |h: &HostView| plan(&r, Some(h))[0].actions.last().unwrap().in_place;
    assert!(proxy_in_place(&h));
    // The secondary IP sits on br-lan: its removal may flush br-lan's proxy entries.
    h.addresses.push(HostAddress {
        interface: "br-lan".into(),
        address: Ipv4Addr::new(10, 88, 60, 21),
        prefix_len: 24,
    });
    assert!(!proxy_in_place(&h));
    // On another interface it does not matter.
    h.addresses[0].interface = "eth0".into();
    assert!(proxy_in_place(&h));
}

//! The merge against the example receiver config, with parts built as the controller builds them.

use routerd_dynamic::{diff_json, diff_text, merge, render_json, render_yaml, MergeError};
use routerd_model::kinds::*;
use routerd_model::{Directive, DynamicConfigPart, GoDuration, Resource, Router, Spec, Timestamp};

const T0: i64 = 1_780_142_400;

fn startup() -> Router {
    routerd_model::load_str(
        include_str!("../../../examples/receiver-cloud.yaml"),
        "receiver",
    )
    .unwrap()
    .router
}

fn claim(addr: &str) -> Resource {
    let host = addr.split('/').next().unwrap().replace('.', "-");
    Resource::new(
        format!("onprem-{host}"),
        Spec::RemoteAddressClaim(RemoteAddressClaimSpec {
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
        }),
    )
}

fn part(source: &str, observed: i64, resources: Vec<Resource>) -> DynamicConfigPart {
    DynamicConfigPart {
        id: observed,
        source: source.into(),
        generation: 1,
        observed_at: Timestamp::from_unix(observed),
        expires_at: Timestamp::from_unix(observed).add(GoDuration::from_secs(1800)),
        resources,
        ..Default::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_unix(T0 + 10)
}

#[test]
fn startup_only_renders_every_startup_resource() {
    let e = merge(&startup(), &[], now()).unwrap();
    assert_eq!(e.router, startup());
    assert_eq!(diff_text(&e), "no dynamic config changes\n");
    let json: serde_json::Value = serde_json::from_str(&diff_json(&e)).unwrap();
    assert_eq!(json["addedResources"], serde_json::Value::Null);
}

#[test]
fn an_active_part_appends_its_claim_after_the_startup_resources() {
    let p = part(
        "EventSubscription/cloud-claims/7b409f932d2c88e9",
        T0,
        vec![claim("10.88.60.9/32")],
    );
    let e = merge(&startup(), &[p], now()).unwrap();
    let names: Vec<_> = e
        .router
        .spec
        .resources
        .iter()
        .map(|r| r.metadata.name.as_str())
        .collect();
    assert_eq!(names.len(), 9);
    assert_eq!(names[8], "onprem-10-88-60-9");
    assert_eq!(
        e.active_parts,
        ["EventSubscription/cloud-claims/7b409f932d2c88e9"]
    );
    assert_eq!(
        diff_text(&e),
        "+ hybrid.routerd.net/v1alpha1/RemoteAddressClaim/onprem-10-88-60-9\tsource=EventSubscription/cloud-claims/7b409f932d2c88e9\tgeneration=1\n"
    );
    // Both renderings parse back to the same document.
    let from_yaml: Router = serde_yaml::from_str(&render_yaml(&e.router)).unwrap();
    let from_json: Router = serde_json::from_str(&render_json(&e.router)).unwrap();
    assert_eq!(from_yaml, e.router);
    assert_eq!(from_json, e.router);
}

#[test]
fn expired_parts_are_listed_and_ignored() {
    let p = part(
        "EventSubscription/cloud-claims/a",
        T0 - 1800,
        vec![claim("10.88.60.9/32")],
    );
    let e = merge(&startup(), &[p], Timestamp::from_unix(T0)).unwrap();
    assert_eq!(e.router.spec.resources.len(), 8);
    assert_eq!(e.expired_parts, ["EventSubscription/cloud-claims/a"]);
}

#[test]
fn a_newer_part_of_the_same_subscription_supersedes_the_older_claim() {
    let newer = part(
        "EventSubscription/cloud-claims/bbbb",
        T0 + 5,
        vec![claim("10.88.60.9/32")],
    );
    let older = part(
        "EventSubscription/cloud-claims/aaaa",
        T0,
        vec![claim("10.88.60.9/32"), claim("10.88.60.10/32")],
    );
    let e = merge(&startup(), &[newer, older], now()).unwrap();
    let claims: Vec<_> = e
        .added_resources
        .iter()
        .map(|a| (a.name.as_str(), a.source.as_str()))
        .collect();
    assert_eq!(
        claims,
        [
            ("onprem-10-88-60-9", "EventSubscription/cloud-claims/bbbb"),
            ("onprem-10-88-60-10", "EventSubscription/cloud-claims/aaaa")
        ]
    );
    assert_eq!(e.superseded.len(), 1);
    assert_eq!(
        e.superseded[0].superseded_by,
        "EventSubscription/cloud-claims/bbbb"
    );
    assert!(diff_text(&e).contains("~ hybrid.routerd.net/v1alpha1/RemoteAddressClaim/onprem-10-88-60-9\tsource=EventSubscription/cloud-claims/aaaa"));
}

#[test]
fn parts_of_different_producers_still_conflict_like_go() {
    let a = part(
        "EventSubscription/cloud-claims/aaaa",
        T0 + 5,
        vec![claim("10.88.60.9/32")],
    );
    let b = part(
        "EventSubscription/other/bbbb",
        T0,
        vec![claim("10.88.60.9/32")],
    );
    let err = merge(&startup(), &[a, b], now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "dynamic resource conflicts with another dynamic resource: source=\"EventSubscription/other/bbbb\" resource=hybrid.routerd.net/v1alpha1/RemoteAddressClaim/onprem-10-88-60-9 existingSource=\"EventSubscription/cloud-claims/aaaa\""
    );
}

#[test]
fn a_dynamic_resource_may_not_shadow_a_startup_resource() {
    let mut dup = startup().spec.resources[0].clone();
    dup.metadata.annotations.insert("x".into(), "y".into());
    let err = merge(&startup(), &[part("Plugin/x", T0, vec![dup])], now()).unwrap_err();
    assert!(
        matches!(err, MergeError::ConflictsWithStartup { .. }),
        "{err}"
    );
}

#[test]
fn an_invalid_dynamic_claim_fails_the_merge_with_its_id() {
    let mut bad = claim("10.99.0.9/32");
    if let Spec::RemoteAddressClaim(s) = &mut bad.spec {
        s.delivery.peer_ref = "nowhere".into();
    }
    let err = merge(&startup(), &[part("Plugin/x", T0, vec![bad])], now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("RemoteAddressClaim/onprem-10-99-0-9 spec.address \"10.99.0.9/32\" is outside AddressMobilityDomain"), "{err}");
    assert!(
        err.contains("spec.delivery.peerRef references missing OverlayPeer \"nowhere\""),
        "{err}"
    );
}

#[test]
fn masks_need_a_policy_and_a_startup_target() {
    let target = ResourceRef {
        api_version: "net.routerd.net/v1alpha1".into(),
        kind: "WireGuardPeer".into(),
        name: "onprem-main".into(),
    };
    let mut p = part("Plugin/masker", T0, vec![]);
    p.directives = vec![Directive {
        op: "mask".into(),
        target: target.clone(),
        reason: "maintenance".into(),
    }];

    let err = merge(&startup(), std::slice::from_ref(&p), now()).unwrap_err();
    assert!(matches!(err, MergeError::MaskNotAllowed { .. }), "{err}");

    let mut with_policy = startup();
    with_policy.spec.resources.push(Resource::new(
        "allow-masker",
        Spec::DynamicOverridePolicy(DynamicOverridePolicySpec {
            allow: vec![OverrideRule {
                source: "Plugin/masker".into(),
                operations: vec!["mask".into()],
                targets: vec![target],
            }],
        }),
    ));
    let e = merge(&with_policy, std::slice::from_ref(&p), now()).unwrap();
    assert!(e.router.find("WireGuardPeer", "onprem-main").is_none());
    assert_eq!(e.suppressed[0].masked_by, "DynamicConfigPart/Plugin/masker");
    assert!(diff_text(&e).starts_with("- net.routerd.net/v1alpha1/WireGuardPeer/onprem-main\tmaskedBy=DynamicConfigPart/Plugin/masker\tmaskedUntil=2026-05-30T12:30:00Z\treason=maintenance"));

    p.directives[0].op = "delete".into();
    let err = merge(&with_policy, &[p], now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported dynamic directive op \"delete\" from source \"Plugin/masker\""
    );
}

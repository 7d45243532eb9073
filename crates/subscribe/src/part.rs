//! Building a DynamicConfigPart from a validated result: source, digest, provenance.

use serde::Serialize;

use routerd_model::{gojson, Directive, DynamicConfigPart, Event, Resource, Timestamp};

use crate::protocol::ValidResult;

pub const ANNOTATION_SOURCE: &str = "routerd.net/dynamic-source";
pub const ANNOTATION_GROUP: &str = "routerd.net/event-group";
pub const ANNOTATION_IDS: &str = "routerd.net/event-id";
pub const ANNOTATION_SUBJECT: &str = "routerd.net/event-subject";

/// `EventSubscription/<sub>/` + the first 16 hex digits of SHA-256 over the sorted batch ids.
pub fn subscription_source(subscription: &str, events: &[Event]) -> String {
    format!(
        "EventSubscription/{subscription}/{}",
        &gojson::sha256_hex(sorted_ids(events).join(",").as_bytes())[..16]
    )
}

fn sorted_ids(events: &[Event]) -> Vec<&str> {
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

/// Go's digest: SHA-256 of `{"resources":…,"directives":…}` as Go encodes it (a missing list is
/// `null`), computed before provenance annotations are stamped.
pub fn digest(resources: &[Resource], directives: &[Directive]) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        resources: Option<&'a [Resource]>,
        directives: Option<&'a [Directive]>,
    }
    let body = Body {
        resources: (!resources.is_empty()).then_some(resources),
        directives: (!directives.is_empty()).then_some(directives),
    };
    gojson::sha256_hex(&gojson::to_vec(&body).expect("resources always encode"))
}

/// The part for `result` with `source` and `generation`, its times derived from `now`.
pub fn build(
    source: String,
    generation: i64,
    result: &ValidResult,
    now: Timestamp,
) -> DynamicConfigPart {
    let observed_at = result.observed_at.unwrap_or(now);
    DynamicConfigPart {
        digest: digest(&result.resources, &result.directives),
        source,
        generation,
        observed_at,
        expires_at: observed_at.add(result.ttl),
        resources: result.resources.clone(),
        directives: result.directives.clone(),
        stored_status: "active".into(),
        ..Default::default()
    }
}

/// Stamps the provenance annotations on every resource (overwriting those keys only).
pub fn stamp_provenance(part: &mut DynamicConfigPart, subscription: &str, events: &[Event]) {
    let ids = sorted_ids(events).join(",");
    let group = events.first().map(|e| e.group.clone()).unwrap_or_default();
    let subjects: Vec<&str> = events
        .iter()
        .map(|e| e.subject.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    for r in &mut part.resources {
        let a = &mut r.metadata.annotations;
        a.insert(
            ANNOTATION_SOURCE.into(),
            format!("EventSubscription/{subscription}"),
        );
        a.insert(ANNOTATION_GROUP.into(), group.clone());
        a.insert(ANNOTATION_IDS.into(), ids.clone());
        if subjects.is_empty() {
            a.remove(ANNOTATION_SUBJECT);
        } else {
            a.insert(ANNOTATION_SUBJECT.into(), subjects.join(","));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, validate};

    fn ev(id: &str) -> Event {
        Event {
            id: id.into(),
            group: "cloudedge".into(),
            subject: "10.88.60.9/32".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sources_match_the_go_lab_runs() {
        assert_eq!(
            subscription_source("cloud-claims", &[ev("evt-1")]),
            "EventSubscription/cloud-claims/7b409f932d2c88e9"
        );
        assert_eq!(
            subscription_source("cloud-claims", &[ev("evt-phase3-smoke-20260530T112250Z")]),
            "EventSubscription/cloud-claims/07634fdff9b3235c"
        );
        assert_eq!(
            subscription_source("cloud-claims", &[ev("evt-2"), ev("evt-1")]),
            "EventSubscription/cloud-claims/493d056058eaa80d"
        );
    }

    /// The example plugin's output for evt-1 (plugin-protocol.md §5).
    const EXAMPLE_RESULT: &str = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"30m","resources":[{"apiVersion":"hybrid.routerd.net/v1alpha1","kind":"RemoteAddressClaim","metadata":{"name":"onprem-10-88-60-9"},"spec":{"domainRef":"cloudedge-same-subnet","address":"10.88.60.9/32","ownerSide":"onprem","capture":{"type":"provider-secondary-ip","providerRef":"example-provider","providerMode":"secondary-ip","nicRef":"example-nic-ref","configureOSAddress":false},"delivery":{"peerRef":"onprem-main","mode":"route","tunnelInterface":"wg-hybrid"}}}]}}"#;

    #[test]
    fn digest_and_annotations_match_the_spec_vector() {
        let result = validate(decode("p", EXAMPLE_RESULT.as_bytes()).unwrap()).unwrap();
        let now = Timestamp::from_unix(1_780_142_405);
        let events = [ev("evt-1")];
        let mut part = build(
            subscription_source("cloud-claims", &events),
            1,
            &result,
            now,
        );
        assert_eq!(
            part.digest,
            "44b049c90b2b97cf26a3e235c9373163588d37f20521296404025499e8dc37ec"
        );
        assert_eq!(part.expires_at, Timestamp::from_unix(1_780_142_405 + 1800));
        stamp_provenance(&mut part, "cloud-claims", &events);
        let stored = gojson::to_string(&part.resources[0].metadata).unwrap();
        assert_eq!(
            stored,
            r#"{"name":"onprem-10-88-60-9","annotations":{"routerd.net/dynamic-source":"EventSubscription/cloud-claims","routerd.net/event-group":"cloudedge","routerd.net/event-id":"evt-1","routerd.net/event-subject":"10.88.60.9/32"}}"#
        );
        assert_eq!(
            part.digest, "44b049c90b2b97cf26a3e235c9373163588d37f20521296404025499e8dc37ec",
            "stamping does not change the digest"
        );
    }
}

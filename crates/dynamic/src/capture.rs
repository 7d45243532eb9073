//! The self-capture (no-feedback-loop) guard: a node must not report as observed an address
//! that it captures itself through an active dynamic RemoteAddressClaim.

use std::collections::HashMap;
use std::net::IpAddr;

use routerd_model::net::parse_ip_or_cidr;
use routerd_model::{DynamicConfigPart, Event, Spec, Timestamp};

pub const OBSERVED: &str = "routerd.client.ipv4.observed";
const SOURCE_ANNOTATION: &str = "routerd.net/dynamic-source";

/// Who captures an address: the claim and the producer that stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub claim: String,
    pub source: Option<String>,
}

/// Addresses captured by RemoteAddressClaims (with a capture type) of parts active at `now`.
/// Startup-config claims are not consulted (as in Go).
pub fn captured_addresses<'a>(
    parts: impl IntoIterator<Item = &'a DynamicConfigPart>,
    now: Timestamp,
) -> HashMap<IpAddr, Capture> {
    let mut out = HashMap::new();
    for part in parts.into_iter().filter(|p| !p.is_expired(now)) {
        for r in &part.resources {
            let Spec::RemoteAddressClaim(c) = &r.spec else {
                continue;
            };
            if c.capture.capture_type.trim().is_empty() {
                continue;
            }
            if let Some(ip) = parse_ip_or_cidr(&c.address) {
                out.entry(ip).or_insert_with(|| Capture {
                    claim: r.metadata.name.clone(),
                    source: r.metadata.annotations.get(SOURCE_ANNOTATION).cloned(),
                });
            }
        }
    }
    out
}

/// The address an observed event reports: payload `address`, else `subject` (IP or CIDR).
pub fn observed_address(e: &Event) -> Option<IpAddr> {
    if e.event_type.trim() != OBSERVED {
        return None;
    }
    e.payload
        .get("address")
        .and_then(|a| parse_ip_or_cidr(a))
        .or_else(|| parse_ip_or_cidr(&e.subject))
}

/// Go's guard with Go's error text; `Ok` for every event that is not a captured observation.
pub fn check_self_capture(captured: &HashMap<IpAddr, Capture>, e: &Event) -> Result<(), String> {
    let Some(ip) = observed_address(e) else {
        return Ok(());
    };
    match captured.get(&ip) {
        None => Ok(()),
        Some(Capture { claim, source: Some(source) }) => Err(format!(
            "federation observed event for {ip} rejected: address is locally captured by RemoteAddressClaim/{claim} from {source}"
        )),
        Some(Capture { claim, source: None }) => Err(format!(
            "federation observed event for {ip} rejected: address is locally captured by RemoteAddressClaim/{claim}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerd_model::kinds::{ClaimCapture, RemoteAddressClaimSpec};
    use routerd_model::{GoDuration, Resource};

    fn part(addr: &str, capture: &str, expires: i64) -> DynamicConfigPart {
        let mut r = Resource::new(
            "onprem-10-88-60-9",
            Spec::RemoteAddressClaim(RemoteAddressClaimSpec {
                address: addr.into(),
                capture: ClaimCapture {
                    capture_type: capture.into(),
                    ..Default::default()
                },
                ..Default::default()
            }),
        );
        r.metadata.annotations.insert(
            SOURCE_ANNOTATION.into(),
            "EventSubscription/cloud-claims".into(),
        );
        DynamicConfigPart {
            resources: vec![r],
            expires_at: Timestamp::from_unix(expires),
            ..Default::default()
        }
    }

    fn observed(subject: &str) -> Event {
        Event {
            event_type: OBSERVED.into(),
            subject: subject.into(),
            ..Default::default()
        }
    }

    #[test]
    fn refuses_an_observation_of_a_captured_address_with_gos_text() {
        let now = Timestamp::from_unix(100);
        let captured =
            captured_addresses(&[part("10.88.60.9/32", "provider-secondary-ip", 200)], now);
        assert_eq!(
            check_self_capture(&captured, &observed("10.88.60.9/32")).unwrap_err(),
            "federation observed event for 10.88.60.9 rejected: address is locally captured by RemoteAddressClaim/onprem-10-88-60-9 from EventSubscription/cloud-claims"
        );
        assert!(check_self_capture(&captured, &observed("10.88.60.10/32")).is_ok());
        let expired = Event {
            event_type: "routerd.client.ipv4.expired".into(),
            ..observed("10.88.60.9/32")
        };
        assert!(
            check_self_capture(&captured, &expired).is_ok(),
            "only observations are guarded"
        );
        let mut by_payload = observed("client-a");
        by_payload
            .payload
            .insert("address".into(), "10.88.60.9".into());
        assert!(check_self_capture(&captured, &by_payload).is_err());
    }

    #[test]
    fn expired_parts_and_claims_without_capture_do_not_count() {
        let now = Timestamp::from_unix(100);
        assert!(captured_addresses(&[part("10.88.60.9/32", "proxy-arp", 100)], now).is_empty());
        assert!(captured_addresses(&[part("10.88.60.9/32", "", 200)], now).is_empty());
        let _ = GoDuration::ZERO;
    }
}

//! event-to-remote-claim: a routerd plugin that turns `routerd.client.ipv4.observed` events into
//! RemoteAddressClaims.
//!
//! Protocol: routerd writes one PluginRequest (JSON) to stdin and reads one PluginResult from
//! stdout. Exit non-zero on error; write diagnostics to stderr. This file depends on serde_json
//! only, so it can be copied as the start of a new plugin.

use std::io::{Read, Write};

use serde_json::{json, Map, Value};

const OBSERVED: &str = "routerd.client.ipv4.observed";

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        fail(&format!("read stdin: {e}"));
    }
    match transform(&input) {
        Ok(result) => {
            let mut out = std::io::stdout().lock();
            let written =
                serde_json::to_writer(&mut out, &result).is_ok() && out.write_all(b"\n").is_ok();
            if !written {
                std::process::exit(1);
            }
        }
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("event-to-remote-claim: {message}");
    std::process::exit(1)
}

/// PluginRequest text → PluginResult value.
fn transform(input: &str) -> Result<Value, String> {
    let request: Value =
        serde_json::from_str(input).map_err(|e| format!("decode PluginRequest: {e}"))?;
    if request.get("kind").and_then(Value::as_str) != Some("PluginRequest") {
        return Err("input is not a PluginRequest".into());
    }
    let events = request
        .pointer("/spec/events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let claims: Vec<Value> = events.iter().filter_map(claim_for).collect();
    Ok(json!({
        "apiVersion": "plugin.routerd.net/v1alpha1",
        "kind": "PluginResult",
        "status": { "ttl": "30m", "resources": claims }
    }))
}

fn text<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> &'a str {
    map.and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("")
}

fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

/// One claim for an observed event; `None` for other types or events without an address.
fn claim_for(event: &Value) -> Option<Value> {
    if event.get("type").and_then(Value::as_str) != Some(OBSERVED) {
        return None;
    }
    let payload = event.get("payload").and_then(Value::as_object);
    let subject = event
        .get("subject")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    let address = or(text(payload, "address"), subject);
    if address.is_empty() {
        return None;
    }
    let owner_side = or(text(payload, "ownerSide"), "onprem");
    Some(json!({
        "apiVersion": "hybrid.routerd.net/v1alpha1",
        "kind": "RemoteAddressClaim",
        "metadata": { "name": claim_name(owner_side, address) },
        "spec": {
            "domainRef": text(payload, "domain"),
            "address": address,
            "ownerSide": owner_side,
            "capture": {
                "type": "provider-secondary-ip",
                "providerRef": or(text(payload, "providerRef"), "example-provider"),
                "providerMode": "secondary-ip",
                "nicRef": or(text(payload, "nicRef"), "example-nic-ref"),
                "configureOSAddress": false
            },
            "delivery": {
                "peerRef": or(text(payload, "peerRef"), "onprem-main"),
                "mode": "route",
                "tunnelInterface": tunnel_interface()
            }
        }
    }))
}

/// The cloud router's tunnel device: the Plugin resource's `env: {TUNNEL_INTERFACE: …}`, else
/// `wg-hybrid` as in the example config.
fn tunnel_interface() -> String {
    std::env::var("TUNNEL_INTERFACE")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "wg-hybrid".into())
}

/// `onprem` + `10.88.60.9/32` → `onprem-10-88-60-9`.
fn claim_name(owner_side: &str, address: &str) -> String {
    let host = address
        .split('/')
        .next()
        .unwrap_or("")
        .replace(['.', ':'], "-");
    format!("{owner_side}-{}", or(&host, "addr"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(events: Value) -> String {
        json!({"apiVersion": "plugin.routerd.net/v1alpha1", "kind": "PluginRequest",
               "metadata": {"name": "event-to-remote-claim"}, "spec": {"events": events}})
        .to_string()
    }

    #[test]
    fn derives_the_documented_claim() {
        let out = transform(&request(json!([{
            "id": "evt-1", "group": "cloudedge", "type": OBSERVED, "subject": "10.88.60.9/32",
            "payload": {"address": "10.88.60.9/32", "domain": "cloudedge-same-subnet", "ownerSide": "onprem",
                        "peerRef": "onprem-main", "providerRef": "example-provider"}
        }])))
        .unwrap();
        assert_eq!(out["status"]["ttl"], "30m");
        let claim = &out["status"]["resources"][0];
        assert_eq!(claim["metadata"]["name"], "onprem-10-88-60-9");
        assert_eq!(claim["spec"]["address"], "10.88.60.9/32");
        assert_eq!(claim["spec"]["domainRef"], "cloudedge-same-subnet");
        assert_eq!(claim["spec"]["capture"]["type"], "provider-secondary-ip");
        assert_eq!(claim["spec"]["capture"]["nicRef"], "example-nic-ref");
        assert_eq!(claim["spec"]["delivery"]["tunnelInterface"], "wg-hybrid");
    }

    #[test]
    fn falls_back_to_subject_and_defaults_and_skips_other_events() {
        let out = transform(&request(json!([
            {"id": "a", "type": OBSERVED, "subject": "10.88.60.10/32"},
            {"id": "b", "type": "routerd.client.ipv4.expired", "subject": "10.88.60.11/32"},
            {"id": "c", "type": OBSERVED}
        ])))
        .unwrap();
        let resources = out["status"]["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 1);
        assert_eq!(resources[0]["metadata"]["name"], "onprem-10-88-60-10");
        assert_eq!(resources[0]["spec"]["delivery"]["peerRef"], "onprem-main");
    }

    #[test]
    fn names_ipv6_and_empty_hosts() {
        assert_eq!(claim_name("cloud", "fd00::1/128"), "cloud-fd00--1");
        assert_eq!(claim_name("onprem", "/32"), "onprem-addr");
    }

    #[test]
    fn rejects_input_that_is_not_a_request() {
        assert!(transform("garbage")
            .unwrap_err()
            .starts_with("decode PluginRequest"));
        assert_eq!(
            transform("{\"kind\":\"Other\"}").unwrap_err(),
            "input is not a PluginRequest"
        );
    }
}

//! PluginRequest and PluginResult: the JSON a plugin reads and writes.

use serde::{Deserialize, Serialize};

use routerd_model::resource::PLUGIN_API;
use routerd_model::{Directive, Event, GoDuration, Resource, Timestamp};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRequest<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: RequestMeta<'a>,
    pub spec: RequestSpec<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestMeta<'a> {
    pub name: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSpec<'a> {
    pub trigger: Trigger,
    pub startup_config_hash: String,
    pub effective_generation: i64,
    pub previous_dynamic_generation: i64,
    /// Nanosecond precision, Go's RFC3339Nano.
    pub now: Timestamp,
    #[serde(skip_serializing_if = "<[Event]>::is_empty")]
    pub events: &'a [Event],
    pub context: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub trigger_type: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topic: String,
}

impl<'a> PluginRequest<'a> {
    pub fn new(plugin: &'a str, trigger: Trigger, now: Timestamp, events: &'a [Event]) -> Self {
        PluginRequest {
            api_version: PLUGIN_API,
            kind: "PluginRequest",
            metadata: RequestMeta { name: plugin },
            spec: RequestSpec {
                trigger,
                startup_config_hash: String::new(),
                effective_generation: 0,
                previous_dynamic_generation: 0,
                now,
                events,
                context: Default::default(),
            },
        }
    }

    /// Compact JSON without a trailing newline: exactly what goes to stdin.
    pub fn to_stdin(&self) -> Vec<u8> {
        routerd_model::gojson::to_vec(self).expect("a request always encodes")
    }
}

/// A plugin's answer. Decoded with YAML (so JSON and YAML both work); keys are case-sensitive,
/// unknown keys ignored, and a resource of an unknown kind fails the whole decode.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PluginResult {
    pub api_version: String,
    pub kind: String,
    pub status: ResultStatus,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ResultStatus {
    #[serde(deserialize_with = "routerd_model::kinds::lenient_string")]
    pub observed_at: String,
    #[serde(deserialize_with = "routerd_model::kinds::lenient_string")]
    pub ttl: String,
    pub resources: Vec<Resource>,
    pub directives: Vec<Directive>,
    pub action_plans: Vec<serde_json::Value>,
    pub events: Vec<serde_yaml::Value>,
}

/// A validated result: what the part is built from.
#[derive(Debug, Clone)]
pub struct ValidResult {
    pub observed_at: Option<Timestamp>,
    pub ttl: GoDuration,
    pub resources: Vec<Resource>,
    pub directives: Vec<Directive>,
    pub action_plans: Vec<serde_json::Value>,
    pub events: usize,
}

pub fn decode(plugin: &str, stdout: &[u8]) -> Result<PluginResult, String> {
    let text =
        std::str::from_utf8(stdout).map_err(|e| format!("decode plugin {plugin} stdout: {e}"))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(PluginResult::default());
    }
    // JSON is YAML, but the JSON decoder is an order of magnitude faster on large results.
    if trimmed.starts_with('{') {
        if let Ok(result) = serde_json::from_str(text) {
            return Ok(result);
        }
    }
    serde_yaml::from_str(text).map_err(|e| format!("decode plugin {plugin} stdout: {e}"))
}

const PROVIDERS: &[&str] = &["aws", "azure", "oci", "gcp"];
const ACTIONS: &[&str] = &[
    "assign-secondary-ip",
    "unassign-secondary-ip",
    "assign-route-table-route",
    "unassign-route-table-route",
    "ensure-forwarding-enabled",
    "ensure-forwarding-disabled",
];

/// Go's PluginResult validation, first failure wins, exact texts.
pub fn validate(result: PluginResult) -> Result<ValidResult, String> {
    if result.api_version != PLUGIN_API {
        return Err(format!("PluginResult apiVersion must be {PLUGIN_API}"));
    }
    if result.kind != "PluginResult" {
        return Err("PluginResult kind must be PluginResult".into());
    }
    let s = result.status;
    let ttl = s.ttl.trim();
    if ttl.is_empty() {
        return Err("PluginResult status.ttl is required".into());
    }
    let ttl = GoDuration::parse(ttl)
        .map_err(|e| format!("PluginResult status.ttl must be a valid duration: {e}"))?;
    if !ttl.is_positive() {
        return Err("PluginResult status.ttl must be greater than 0".into());
    }
    let observed_at = match s.observed_at.trim() {
        "" => None,
        t => Some(
            Timestamp::parse_rfc3339(t)
                .map_err(|e| format!("PluginResult status.observedAt: {e}"))?,
        ),
    }
    .filter(|t| !t.is_zero());
    for (i, r) in s.resources.iter().enumerate() {
        if r.api_version.trim().is_empty() {
            return Err(format!(
                "PluginResult status.resources[{i}].apiVersion is required"
            ));
        }
        if r.kind.trim().is_empty() {
            return Err(format!(
                "PluginResult status.resources[{i}].kind is required"
            ));
        }
        if r.metadata.name.trim().is_empty() {
            return Err(format!(
                "PluginResult status.resources[{i}].metadata.name is required"
            ));
        }
    }
    for (i, d) in s.directives.iter().enumerate() {
        if d.op != "mask" {
            return Err(format!(
                "PluginResult status.directives[{i}].op must be mask"
            ));
        }
        for (value, field) in [
            (&d.target.api_version, "apiVersion"),
            (&d.target.kind, "kind"),
            (&d.target.name, "name"),
        ] {
            if value.trim().is_empty() {
                return Err(format!(
                    "PluginResult status.directives[{i}].target.{field} is required"
                ));
            }
        }
    }
    for (i, plan) in s.action_plans.iter().enumerate() {
        validate_action_plan(plan)
            .map_err(|e| format!("PluginResult status.actionPlans[{i}]: {e}"))?;
    }
    Ok(ValidResult {
        observed_at,
        ttl,
        resources: s.resources,
        directives: s.directives,
        action_plans: s.action_plans,
        events: s.events.len(),
    })
}

/// Action plans are display-only: shape checks, and `mode: execute` is refused.
fn validate_action_plan(plan: &serde_json::Value) -> Result<(), String> {
    let field = |path: &str| {
        plan.pointer(path)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .unwrap_or("")
    };
    if field("/name").is_empty() {
        return Err("actionPlan name is required".into());
    }
    let provider = field("/provider");
    if provider.is_empty() {
        return Err("actionPlan provider is required".into());
    }
    if !PROVIDERS.contains(&provider) {
        return Err(format!(
            "actionPlan provider {provider:?} must be one of aws, azure, oci, gcp"
        ));
    }
    let action = field("/action");
    if action.is_empty() {
        return Err("actionPlan action is required".into());
    }
    if !ACTIONS.contains(&action) {
        return Err(format!("actionPlan action {action:?} is not supported"));
    }
    match field("/mode") {
        "" | "dry-run" => {}
        "execute" => {
            return Err(
                "actionPlan mode=execute is not supported; provider actions are dry-run/display-only in Phase 4.1".into()
            )
        }
        other => return Err(format!("actionPlan mode {other:?} must be empty or dry-run")),
    }
    if !matches!(field("/riskLevel"), "" | "low" | "medium" | "high") {
        return Err("actionPlan riskLevel must be low, medium or high".into());
    }
    if plan.get("undo").is_some() && !ACTIONS.contains(&field("/undo/action")) {
        return Err("actionPlan undo.action is required and must be a supported action".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<ValidResult, String> {
        validate(decode("p", text.as_bytes())?)
    }

    #[test]
    fn request_matches_the_documented_shape() {
        let ev = Event {
            id: "evt-1".into(),
            group: "cloudedge".into(),
            event_type: "t".into(),
            dedupe_key: "evt-1".into(),
            observed_at: Timestamp::from_unix(1_780_142_400),
            ..Default::default()
        };
        let evs = [ev];
        let req = PluginRequest::new(
            "event-to-remote-claim",
            Trigger {
                trigger_type: "federation-subscription",
                topic: "routerd.federation.subscription/cloud-claims".into(),
            },
            Timestamp::from_unix_nanos(1_780_142_405_123_456_789),
            &evs,
        );
        let text = String::from_utf8(req.to_stdin()).unwrap();
        assert_eq!(
            text,
            r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginRequest","metadata":{"name":"event-to-remote-claim"},"spec":{"trigger":{"type":"federation-subscription","topic":"routerd.federation.subscription/cloud-claims"},"startupConfigHash":"","effectiveGeneration":0,"previousDynamicGeneration":0,"now":"2026-05-30T12:00:05.123456789Z","events":[{"id":"evt-1","group":"cloudedge","type":"t","dedupeKey":"evt-1","observedAt":"2026-05-30T12:00:00Z","expiresAt":"0001-01-01T00:00:00Z"}],"context":{}}}"#
        );
    }

    #[test]
    fn accepts_json_and_yaml_results() {
        let json = r#"{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"30m"}}"#;
        assert_eq!(check(json).unwrap().ttl, GoDuration::from_secs(1800));
        let yaml = "apiVersion: plugin.routerd.net/v1alpha1\nkind: PluginResult\nstatus:\n  ttl: 1h\n  observedAt: 2026-05-30T12:00:00Z\n";
        let r = check(yaml).unwrap();
        assert_eq!(r.observed_at, Some(Timestamp::from_unix(1_780_142_400)));
    }

    #[test]
    fn rejects_bad_results_with_go_texts() {
        let head = "apiVersion: plugin.routerd.net/v1alpha1\nkind: PluginResult\n";
        let cases = [
            ("", "PluginResult apiVersion must be plugin.routerd.net/v1alpha1"),
            ("apiVersion: plugin.routerd.net/v1alpha1\nkind: Other\n", "PluginResult kind must be PluginResult"),
            (&format!("{head}status: {{}}\n"), "PluginResult status.ttl is required"),
            (&format!("{head}status: {{ttl: 30}}\n"), "PluginResult status.ttl must be a valid duration: missing unit in duration \"30\""),
            (&format!("{head}status: {{ttl: -5m}}\n"), "PluginResult status.ttl must be greater than 0"),
            (&format!("{head}status: {{ttl: 5m, directives: [{{op: delete}}]}}\n"), "PluginResult status.directives[0].op must be mask"),
            (
                &format!("{head}status: {{ttl: 5m, actionPlans: [{{name: a, provider: oci, action: assign-secondary-ip, mode: execute}}]}}\n"),
                "PluginResult status.actionPlans[0]: actionPlan mode=execute is not supported; provider actions are dry-run/display-only in Phase 4.1",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(check(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn an_unknown_kind_fails_the_whole_decode() {
        let text = "apiVersion: plugin.routerd.net/v1alpha1\nkind: PluginResult\nstatus:\n  ttl: 5m\n  resources:\n    - {apiVersion: x/v1, kind: Gizmo, metadata: {name: g}}\n";
        let err = check(text).unwrap_err();
        assert!(
            err.starts_with("decode plugin p stdout: ")
                && err.contains("unsupported resource kind Gizmo in x/v1/Gizmo/g"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(check("{{{ not yaml")
            .unwrap_err()
            .starts_with("decode plugin p stdout:"));
        assert!(decode("p", &[0xff, 0xfe])
            .unwrap_err()
            .starts_with("decode plugin p stdout:"));
    }
}

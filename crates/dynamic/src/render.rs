use routerd_model::Router;
use serde::Serialize;

use crate::merge::{AddedResource, Effective, Superseded, Suppressed};

/// The effective Router as YAML (`routerctl dynamic render`, the default).
pub fn render_yaml(router: &Router) -> String {
    serde_yaml::to_string(router).expect("a Router always encodes as YAML")
}

/// The effective Router as 2-space indented JSON with a trailing newline.
pub fn render_json(router: &Router) -> String {
    let mut s = serde_json::to_string_pretty(router).expect("a Router always encodes as JSON");
    s.push('\n');
    s
}

/// `routerctl dynamic diff` text: `+` added, `-` suppressed, `~` superseded (ours).
pub fn diff_text(e: &Effective) -> String {
    let mut out = String::new();
    for a in &e.added_resources {
        out.push_str(&format!(
            "+ {}/{}/{}\tsource={}\tgeneration={}\n",
            a.api_version, a.kind, a.name, a.source, a.generation
        ));
    }
    for s in &e.suppressed {
        let until = if s.masked_until.is_zero() {
            "-".to_string()
        } else {
            s.masked_until.to_rfc3339_secs()
        };
        out.push_str(&format!(
            "- {}/{}/{}\tmaskedBy={}\tmaskedUntil={}",
            s.api_version, s.kind, s.name, s.masked_by, until
        ));
        if !s.reason.is_empty() {
            out.push_str(&format!("\treason={}", s.reason));
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("no dynamic config changes\n");
    }
    for s in &e.superseded {
        out.push_str(&format!(
            "~ {}/{}/{}\tsource={}\tgeneration={}\tsupersededBy={}\n",
            s.api_version, s.kind, s.name, s.source, s.generation, s.superseded_by
        ));
    }
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiffJson<'a> {
    suppressed: Option<&'a [Suppressed]>,
    added_resources: Option<&'a [AddedResource]>,
    active_parts: Option<&'a [String]>,
    expired_parts: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded_resources: Option<&'a [Superseded]>,
}

/// `routerctl dynamic diff -o json`; empty lists are `null` as in Go.
pub fn diff_json(e: &Effective) -> String {
    fn opt<T>(v: &[T]) -> Option<&[T]> {
        (!v.is_empty()).then_some(v)
    }
    let doc = DiffJson {
        suppressed: opt(&e.suppressed),
        added_resources: opt(&e.added_resources),
        active_parts: opt(&e.active_parts),
        expired_parts: opt(&e.expired_parts),
        superseded_resources: opt(&e.superseded),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("diff always encodes");
    s.push('\n');
    s
}

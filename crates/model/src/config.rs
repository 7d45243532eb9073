//! Loading a Router document from YAML.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::resource::{RawResource, Reconcile, Resource, Router, RouterMeta, RouterSpec};
use crate::validate::{validate, Report};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parse config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config {origin} is invalid:\n{}", bullet(.problems))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

fn bullet(problems: &[String]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loaded and validated config with the warnings validation produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub router: Router,
    pub warnings: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawRouter {
    api_version: String,
    kind: String,
    metadata: RouterMeta,
    spec: RawRouterSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRouterSpec {
    reconcile: Option<Reconcile>,
    resources: Vec<RawResource>,
}

/// Reads, decodes and validates a config file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: origin.clone(),
        source,
    })?;
    load_str(&text, &origin)
}

/// Decodes and validates a config held in memory; `origin` names it in errors.
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    let (router, mut problems) = decode(text, origin)?;
    let Report { errors, warnings } = validate(&router);
    problems.extend(errors);
    if problems.is_empty() {
        Ok(Loaded { router, warnings })
    } else {
        // One problem can surface twice (decode + validation); keep the first of each.
        let mut seen = HashSet::new();
        problems.retain(|p| seen.insert(p.clone()));
        Err(ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        })
    }
}

/// Parses YAML into a Router, collecting per-resource decode problems instead of stopping.
fn decode(text: &str, origin: &str) -> Result<(Router, Vec<String>), ConfigError> {
    let parse_err = |e: serde_yaml::Error| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    };
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(parse_err)?;
    if value.is_null() {
        return Err(ConfigError::Parse {
            origin: origin.to_string(),
            message: "the document is empty".into(),
        });
    }
    let raw: RawRouter = serde_yaml::from_value(value).map_err(parse_err)?;
    let mut problems = Vec::new();
    let mut resources = Vec::with_capacity(raw.spec.resources.len());
    for (i, r) in raw.spec.resources.into_iter().enumerate() {
        if r.kind.trim().is_empty() || r.api_version.trim().is_empty() {
            // Reported by validation with Go's wording; nothing to decode by.
            problems.push(if r.api_version.trim().is_empty() {
                format!("spec.resources[{i}]: resource apiVersion is required")
            } else {
                format!("spec.resources[{i}]: resource kind is required")
            });
            continue;
        }
        match Resource::from_raw(r) {
            Ok(res) => resources.push(res),
            Err(e) => problems.push(e),
        }
    }
    let router = Router {
        api_version: raw.api_version,
        kind: raw.kind,
        metadata: raw.metadata,
        spec: RouterSpec {
            reconcile: raw.spec.reconcile,
            resources,
        },
    };
    Ok((router, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVER: &str = include_str!("../../../examples/receiver-cloud.yaml");
    const SENDER: &str = include_str!("../../../examples/sender-onprem.yaml");

    #[test]
    fn example_receiver_loads_with_the_provider_mode_warning_free() {
        let loaded = load_str(RECEIVER, "receiver").unwrap();
        assert_eq!(loaded.router.metadata.name, "cloudedge-receiver");
        assert_eq!(loaded.router.spec.resources.len(), 8);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn example_sender_loads_with_its_client_observer() {
        let loaded = load_str(SENDER, "sender").unwrap();
        let (_, obs) = loaded
            .router
            .specs(crate::resource::pick::client_observer)
            .next()
            .unwrap();
        assert_eq!(obs.interfaces, ["br-lan"]);
        assert_eq!(obs.payload["peerRef"], "onprem-main");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn client_observer_validation() {
        let yaml = format!(
            "{HEAD}    - apiVersion: federation.routerd.net/v1alpha1\n      kind: ClientObserver\n      metadata: {{name: o}}\n      spec: {{groupRef: nowhere, prefixes: [10.0.0.300/24], ttl: 5}}\n"
        );
        let p = problems(&yaml);
        let id = "federation.routerd.net/v1alpha1/ClientObserver/o";
        for want in [
            format!("{id} spec.interfaces is required (at least one interface)"),
            format!("{id} spec.ttl must be a valid duration: missing unit in duration \"5\""),
            format!("{id} spec.groupRef references missing EventGroup \"nowhere\""),
        ] {
            assert!(p.contains(&want), "{want} not in {p:?}");
        }
        assert!(p.iter().any(|e| e.starts_with(&format!("{id} spec.prefixes[0] must be a valid IPv4 CIDR"))), "{p:?}");
    }

    fn problems(yaml: &str) -> Vec<String> {
        match load_str(yaml, "t") {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    const HEAD: &str = "apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {name: t}\nspec:\n  resources:\n";

    #[test]
    fn lists_every_problem_with_its_resource_id() {
        let yaml = format!(
            "{HEAD}    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventSubscription
      metadata: {{name: s}}
      spec: {{groupRef: g, trigger: {{pluginRef: p}}}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {{name: p}}
      spec: {{executable: bin/plugin}}
    - apiVersion: example.net/v1
      kind: Gizmo
      metadata: {{name: g}}
"
        );
        let p = problems(&yaml);
        assert!(p.contains(&"federation.routerd.net/v1alpha1/EventSubscription/s spec.match.types is required (at least one type)".to_string()), "{p:?}");
        assert!(
            p.contains(
                &"plugin.routerd.net/v1alpha1/Plugin/p spec.executable must be an absolute path"
                    .to_string()
            ),
            "{p:?}"
        );
        assert!(
            p.contains(&"unsupported resource kind Gizmo in example.net/v1/Gizmo/g".to_string()),
            "{p:?}"
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn broken_yaml_and_wrong_wrapper_are_errors() {
        assert!(matches!(
            load_str("spec: [unclosed", "t"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(load_str("", "t"), Err(ConfigError::Parse { .. })));
        let p = problems("apiVersion: v1\nkind: Config\nmetadata: {}\n");
        assert_eq!(
            p,
            vec![
                "router apiVersion must be routerd.net/v1alpha1".to_string(),
                "router kind must be Router".to_string(),
                "router metadata.name is required".to_string()
            ]
        );
    }

    #[test]
    fn duplicate_keys_and_mistyped_fields_are_errors() {
        assert!(load_str(&format!("{HEAD}    []\nmetadata: {{name: x}}\n"), "t").is_err());
        let yaml = format!(
            "{HEAD}    - apiVersion: federation.routerd.net/v1alpha1\n      kind: EventGroup\n      metadata: {{name: g}}\n      spec: {{nodeName: n, retention: {{maxEvents: \"10\"}}}}\n"
        );
        let p = problems(&yaml);
        assert!(
            p[0].starts_with("federation.routerd.net/v1alpha1/EventGroup/g spec:"),
            "{p:?}"
        );
    }

    #[test]
    fn durations_use_go_syntax() {
        let yaml = format!(
            "{HEAD}    - apiVersion: federation.routerd.net/v1alpha1\n      kind: EventGroup\n      metadata: {{name: g}}\n      spec: {{nodeName: n, retention: {{maxAge: 1d}}, replayWindow: \"300\"}}\n"
        );
        let p = problems(&yaml);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("spec.retention.maxAge must be a Go duration: unknown unit \"d\""),
            "{p:?}"
        );
        assert!(
            p[1].contains("spec.replayWindow must be a Go duration: missing unit"),
            "{p:?}"
        );
    }
}

use std::collections::{BTreeMap, HashMap, HashSet};

use routerd_model::validate::validate;
use routerd_model::{DynamicConfigPart, ResourceId, Router, Timestamp};
use serde::Serialize;

/// A startup resource hidden by `mask` directives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppressed {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Sorted, comma-joined `DynamicConfigPart/<source>` values.
    pub masked_by: String,
    pub masked_until: Timestamp,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A resource a dynamic part added.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedResource {
    pub source: String,
    pub generation: i64,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// A resource of an older part left out because a newer part of the same producer carries the
/// same identity (routerd-edge's supersede rule; not in Go).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Superseded {
    pub source: String,
    pub generation: i64,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub superseded_by: String,
}

/// The merge result: the effective Router and how it came to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub router: Router,
    pub suppressed: Vec<Suppressed>,
    pub added_resources: Vec<AddedResource>,
    pub superseded: Vec<Superseded>,
    pub active_parts: Vec<String>,
    pub expired_parts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MergeError {
    #[error("unsupported dynamic directive op {op:?} from source {part:?}")]
    UnsupportedOp { op: String, part: String },
    #[error("dynamic mask not allowed by DynamicOverridePolicy: source={part:?} target={target}")]
    MaskNotAllowed { part: String, target: ResourceId },
    #[error("mask target not found: source={part:?} target={target}")]
    MaskTargetNotFound { part: String, target: ResourceId },
    #[error("mask target names a dynamic resource: source={part:?} target={target}")]
    MaskTargetDynamic { part: String, target: ResourceId },
    #[error(
        "dynamic resource conflicts with startup resource: source={part:?} resource={resource}"
    )]
    ConflictsWithStartup { part: String, resource: ResourceId },
    #[error(
        "dynamic resource conflicts with another dynamic resource: source={part:?} resource={resource} existingSource={existing:?}"
    )]
    ConflictsWithDynamic {
        part: String,
        resource: ResourceId,
        existing: String,
    },
    #[error("effective config is invalid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// Parts whose resources supersede each other: every part of one subscription, or every
/// generation of one source (`routerctl plugin run` makes a new generation each time).
fn producer(part: &DynamicConfigPart) -> &str {
    part.subscription_key().unwrap_or(&part.source)
}

/// Merges `parts` (in store order: newest first) into `startup` at `now`.
///
/// Go fails when two active parts carry a resource of the same identity. Here the newest part of
/// the same producer wins and the older resource is reported as superseded; parts of different
/// producers still conflict, as do dynamic resources that collide with startup resources.
pub fn merge<'a>(
    startup: &Router,
    parts: impl IntoIterator<Item = &'a DynamicConfigPart>,
    now: Timestamp,
) -> Result<Effective, MergeError> {
    let (active, expired): (Vec<&DynamicConfigPart>, Vec<&DynamicConfigPart>) =
        parts.into_iter().partition(|p| !p.is_expired(now));

    let startup_ids: HashSet<ResourceId> = startup.spec.resources.iter().map(|r| r.id()).collect();
    let dynamic_ids: HashSet<ResourceId> = active
        .iter()
        .flat_map(|p| p.resources.iter().map(|r| r.id()))
        .collect();

    // Masks: each must be allowed by a policy, name a startup resource, and not a dynamic one.
    let policies: Vec<_> = startup
        .specs(routerd_model::resource::pick::override_policy)
        .collect();
    let mut masks: BTreeMap<ResourceId, (Vec<String>, Timestamp, Vec<String>)> = BTreeMap::new();
    for part in &active {
        for d in &part.directives {
            if d.op != "mask" {
                return Err(MergeError::UnsupportedOp {
                    op: d.op.clone(),
                    part: part.source.clone(),
                });
            }
            let target = ResourceId::from(&d.target);
            let allowed = policies.iter().any(|(_, p)| {
                p.allow.iter().any(|rule| {
                    rule.source == part.source
                        && rule.operations.iter().any(|o| o == "mask")
                        && rule.targets.iter().any(|t| ResourceId::from(t) == target)
                })
            });
            if !allowed {
                return Err(MergeError::MaskNotAllowed {
                    part: part.source.clone(),
                    target,
                });
            }
            if !startup_ids.contains(&target) {
                return Err(MergeError::MaskTargetNotFound {
                    part: part.source.clone(),
                    target,
                });
            }
            if dynamic_ids.contains(&target) {
                return Err(MergeError::MaskTargetDynamic {
                    part: part.source.clone(),
                    target,
                });
            }
            let entry = masks
                .entry(target)
                .or_insert_with(|| (Vec::new(), Timestamp::ZERO, Vec::new()));
            entry.0.push(format!("DynamicConfigPart/{}", part.source));
            entry.1 = entry.1.max(part.expires_at);
            let reason = d.reason.trim();
            if !reason.is_empty() {
                entry.2.push(reason.to_string());
            }
        }
    }
    let suppressed: Vec<Suppressed> = masks
        .iter()
        .map(|(id, (by, until, reasons))| {
            let mut by = by.clone();
            by.sort();
            by.dedup();
            let mut reasons = reasons.clone();
            reasons.sort();
            reasons.dedup();
            Suppressed {
                api_version: id.api_version.clone(),
                kind: id.kind.clone(),
                name: id.name.clone(),
                masked_by: by.join(","),
                masked_until: *until,
                reason: reasons.join("; "),
            }
        })
        .collect();

    let mut router = startup.clone();
    router
        .spec
        .resources
        .retain(|r| !masks.contains_key(&r.id()));

    let mut added = Vec::new();
    let mut superseded = Vec::new();
    let mut owner: HashMap<ResourceId, &DynamicConfigPart> = HashMap::new();
    for part in &active {
        for res in &part.resources {
            let id = res.id();
            if startup_ids.contains(&id) {
                return Err(MergeError::ConflictsWithStartup {
                    part: part.source.clone(),
                    resource: id,
                });
            }
            if let Some(newer) = owner.get(&id) {
                if producer(newer) == producer(part) {
                    superseded.push(Superseded {
                        source: part.source.clone(),
                        generation: part.generation,
                        api_version: id.api_version,
                        kind: id.kind,
                        name: id.name,
                        superseded_by: newer.source.clone(),
                    });
                    continue;
                }
                return Err(MergeError::ConflictsWithDynamic {
                    part: part.source.clone(),
                    resource: id,
                    existing: newer.source.clone(),
                });
            }
            owner.insert(id.clone(), part);
            added.push(AddedResource {
                source: part.source.clone(),
                generation: part.generation,
                api_version: id.api_version,
                kind: id.kind,
                name: id.name,
            });
            router.spec.resources.push(res.clone());
        }
    }

    let report = validate(&router);
    if !report.is_ok() {
        return Err(MergeError::Invalid(report.errors));
    }
    Ok(Effective {
        router,
        suppressed,
        added_resources: added,
        superseded,
        active_parts: active.iter().map(|p| p.source.clone()).collect(),
        expired_parts: expired.iter().map(|p| p.source.clone()).collect(),
    })
}

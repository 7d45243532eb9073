//! `routerctl claims`: each RemoteAddressClaim with its phase from the last apply pass, plus the
//! journal's withdrawals under way. Reads the state only.

use std::collections::BTreeMap;

use serde::Serialize;

use routerd_model::Timestamp;

use crate::cli::ClaimsArgs;
use crate::output::{self, table, Format};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClaimView {
    claim: String,
    address: String,
    phase: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawing_until: Option<Timestamp>,
    dry_run: bool,
    updated_at: Timestamp,
    actions: serde_json::Value,
}

pub fn run(a: &ClaimsArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, &[Format::Table, Format::Json, Format::Yaml])?;
    let store = crate::open_store_read_only(&a.state.state_file)?;
    let mut views: Vec<ClaimView> = store
        .claim_statuses()?
        .into_iter()
        .map(|r| ClaimView {
            claim: r.claim,
            address: r.address,
            phase: r.phase,
            reason: r.reason,
            message: r.message,
            withdrawing_until: None,
            dry_run: r.dry_run,
            updated_at: r.updated_at,
            actions: serde_json::from_str(&r.actions_json).unwrap_or_default(),
        })
        .collect();
    // Installed actions of claims that are gone, grouped by claim.
    let mut gone: BTreeMap<String, (Timestamp, Timestamp, Vec<serde_json::Value>)> =
        BTreeMap::new();
    for j in store.journal()? {
        let Some(until) = j.withdraw_after else {
            continue;
        };
        let e = gone
            .entry(j.claim.clone())
            .or_insert((until, j.installed_at, Vec::new()));
        e.0 = e.0.min(until);
        e.2.push(serde_json::from_str(&j.action_json).unwrap_or_default());
    }
    for (claim, (until, installed, actions)) in gone {
        if let Some(v) = views.iter_mut().find(|v| v.claim == claim) {
            v.withdrawing_until = Some(until);
            continue;
        }
        let address = actions
            .iter()
            .find_map(|a| a.get("destination").and_then(|d| d.as_str()))
            .map(|d| format!("{d}/32"))
            .unwrap_or_default();
        views.push(ClaimView {
            claim,
            address,
            phase: "Withdrawing".into(),
            reason: String::new(),
            message: String::new(),
            withdrawing_until: Some(until),
            dry_run: false,
            updated_at: installed,
            actions: serde_json::Value::Array(actions),
        });
    }
    let text = match format {
        Format::Json => output::json(&views),
        Format::Yaml => output::yaml(&views),
        _ if views.is_empty() => {
            "no claims recorded: no apply pass has run (routerd serve, or routerd apply --live)\n"
                .into()
        }
        _ => table(
            &["CLAIM", "ADDRESS", "PHASE", "ACTIONS", "DETAIL", "UPDATED"],
            &views.iter().map(row).collect::<Vec<_>>(),
        ),
    };
    print!("{text}");
    Ok(())
}

fn row(v: &ClaimView) -> Vec<String> {
    let actions = v.actions.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut detail = match (v.reason.is_empty(), v.message.is_empty()) {
        (false, false) => format!("{}: {}", v.reason, v.message),
        (false, true) => v.reason.clone(),
        _ => String::new(),
    };
    if let Some(until) = v.withdrawing_until {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&format!("withdrawing until {}", until.to_rfc3339_secs()));
    } else if v.dry_run && v.phase == "Planned" {
        detail = "dry run: routerd is not applying (--live)".into();
    }
    let actions = actions
        .iter()
        .map(action_cell)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        v.claim.clone(),
        v.address.clone(),
        v.phase.clone(),
        actions,
        detail,
        v.updated_at.display_cell(),
    ]
}

/// `route=applied`, `allowed-ip=inPlace`, …: the kind of host object and what became of it. A
/// status row names the object by its journal key; a journal row (a claim that is gone) by its
/// action type, and what it has is installed.
fn action_cell(a: &serde_json::Value) -> String {
    let text = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (kind, state) = match text("key").split_whitespace().next() {
        Some(kind) => (kind.to_string(), text("state").to_string()),
        None => {
            let kind = match text("type") {
                "allowedIp" => "allowed-ip",
                "proxyNeighbour" => "proxy-neighbour",
                other => other,
            };
            (kind.to_string(), "installed".to_string())
        }
    };
    format!("{kind}={state}")
}

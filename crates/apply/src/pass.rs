//! One apply pass: plan against the host, then (live) install what is missing and withdraw
//! what no claim wants any more. Dry-run reads the host but changes nothing, not even the
//! journal.

use std::collections::HashSet;

use routerd_model::{GoDuration, Router, Timestamp};
use routerd_state::{ClaimStatusRow, Store};
use serde::Serialize;

use crate::host::{Host, HostError};
use crate::plan::{self, Action, HostView};

/// ADR 0006's de-provision hysteresis: how long an installed action outlives its claim.
pub const DEFAULT_WITHDRAW_GRACE: GoDuration = GoDuration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Options {
    /// Change the host. Off by default everywhere.
    pub live: bool,
    pub withdraw_grace: GoDuration,
    /// Store each claim's outcome for `routerctl claims` (the daemon and live passes do; a
    /// one-off dry run is a preview and leaves the state alone).
    pub record: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            live: false,
            withdraw_grace: DEFAULT_WITHDRAW_GRACE,
            record: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("read the host: {0} (live apply needs netlink; run as root on the router)")]
    Host(#[from] HostError),
    #[error(transparent)]
    State(#[from] routerd_state::StateError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Dry run: something would change.
    Planned,
    /// Everything the claim needs is on the host.
    Installed,
    /// Waiting for the host (a device that does not exist yet, a peer not configured).
    Pending,
    /// The config is wrong for this claim, or the host refused an action.
    Error,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Planned => "Planned",
            Phase::Installed => "Installed",
            Phase::Pending => "Pending",
            Phase::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ActionState {
    InPlace,
    WouldRun,
    Applied,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionOutcome {
    pub state: ActionState,
    pub command: String,
    pub action: Action,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimOutcome {
    pub claim: String,
    pub address: String,
    pub route_name: String,
    pub phase: Phase,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub actions: Vec<ActionOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WithdrawalState {
    /// Within the grace period.
    Waiting,
    WouldWithdraw,
    Withdrawn,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithdrawalOutcome {
    pub claim: String,
    pub key: String,
    pub state: WithdrawalState,
    pub due: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    pub live: bool,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_error: Option<String>,
    pub claims: Vec<ClaimOutcome>,
    pub withdrawals: Vec<WithdrawalOutcome>,
}

impl PassReport {
    /// Actions applied or withdrawn by this pass.
    pub fn changes(&self) -> usize {
        self.claims
            .iter()
            .flat_map(|c| &c.actions)
            .filter(|a| a.state == ActionState::Applied)
            .count()
            + self
                .withdrawals
                .iter()
                .filter(|w| w.state == WithdrawalState::Withdrawn)
                .count()
    }
}

/// One pass over the claims of the effective config `router`.
pub async fn pass(
    store: &Store,
    router: &Router,
    opts: &Options,
) -> Result<PassReport, ApplyError> {
    let now = store.now();
    let read = async {
        let host = Host::connect()?;
        let view = host.read(&plan::wireguard_interfaces(router)).await?;
        Ok::<_, HostError>((host, view))
    };
    let (host, view, host_error) = match read.await {
        Ok((h, v)) => (Some(h), Some(v), None),
        Err(e) if opts.live => return Err(e.into()),
        Err(e) => (None, None, Some(e.to_string())),
    };
    let plans = plan::plan(router, view.as_ref());
    let journal = store.journal()?;
    let journaled: HashSet<&str> = journal.iter().map(|j| j.key.as_str()).collect();
    let live = host.as_ref().filter(|_| opts.live).zip(view.as_ref());

    let mut claims = Vec::with_capacity(plans.len());
    let mut desired = HashSet::new();
    let mut held = HashSet::new();
    for p in &plans {
        if let Some(problem) = &p.problem {
            held.insert(p.claim.clone());
            claims.push(ClaimOutcome {
                claim: p.claim.clone(),
                address: p.address.clone(),
                route_name: p.route_name.clone(),
                phase: if problem.pending {
                    Phase::Pending
                } else {
                    Phase::Error
                },
                reason: problem.reason,
                message: problem.message.clone(),
                actions: Vec::new(),
            });
            continue;
        }
        let mut actions = Vec::with_capacity(p.actions.len());
        for pa in &p.actions {
            let key = pa.action.key();
            desired.insert(key.clone());
            let mut outcome = ActionOutcome {
                state: ActionState::InPlace,
                command: pa.action.command(),
                action: pa.action.clone(),
                error: String::new(),
            };
            match live {
                _ if pa.in_place => {}
                None => outcome.state = ActionState::WouldRun,
                Some((host, view)) => {
                    outcome.state = ActionState::Applied;
                    let withdrawable = pa.action.is_withdrawable();
                    if withdrawable {
                        // Intent first: a crash after the change still leaves a record.
                        let json = serde_json::to_string(&pa.action).unwrap_or_default();
                        store.journal_record(&key, &p.claim, &json)?;
                    }
                    if let Err(e) = host.install(view, &pa.action).await {
                        outcome.state = ActionState::Failed;
                        outcome.error = e.to_string();
                        if withdrawable && !journaled.contains(key.as_str()) {
                            store.journal_remove(&key)?;
                        }
                    }
                }
            }
            actions.push(outcome);
        }
        let failed = actions.iter().find(|a| a.state == ActionState::Failed);
        let (phase, reason, message) = match failed {
            Some(f) => (
                Phase::Error,
                "ApplyFailed",
                format!("{}: {}", f.command, f.error),
            ),
            None if actions.iter().any(|a| a.state == ActionState::WouldRun) => {
                (Phase::Planned, "", String::new())
            }
            None => (Phase::Installed, "", String::new()),
        };
        claims.push(ClaimOutcome {
            claim: p.claim.clone(),
            address: p.address.clone(),
            route_name: p.route_name.clone(),
            phase,
            reason,
            message,
            actions,
        });
    }

    let mut withdrawals = Vec::new();
    for entry in &journal {
        if desired.contains(&entry.key) || held.contains(&entry.claim) {
            if opts.live {
                store.journal_hold(&entry.key)?;
            }
            continue;
        }
        let action: Option<Action> = serde_json::from_str(&entry.action_json).ok();
        let mut w = WithdrawalOutcome {
            claim: entry.claim.clone(),
            key: entry.key.clone(),
            state: WithdrawalState::Waiting,
            due: entry
                .withdraw_after
                .unwrap_or_else(|| now.add(opts.withdraw_grace)),
            command: action.as_ref().and_then(|a| undo_command(a, view.as_ref())),
            error: String::new(),
        };
        if opts.live {
            w.due = store
                .journal_withdraw_at(&entry.key, now.add(opts.withdraw_grace))?
                .unwrap_or(w.due);
        }
        if now >= w.due {
            w.state = match (live, &action) {
                (None, _) => WithdrawalState::WouldWithdraw,
                (Some(_), None) => {
                    w.error = "the journal entry cannot be read; remove it by hand".into();
                    WithdrawalState::Failed
                }
                (Some((host, view)), Some(action)) => match host.undo(view, action).await {
                    Ok(()) => {
                        store.journal_remove(&entry.key)?;
                        WithdrawalState::Withdrawn
                    }
                    Err(e) => {
                        w.error = e.to_string();
                        WithdrawalState::Failed
                    }
                },
            };
        }
        withdrawals.push(w);
    }

    let report = PassReport {
        live: opts.live,
        at: now,
        host_error,
        claims,
        withdrawals,
    };
    if opts.record {
        store.replace_claim_statuses(&status_rows(&report))?;
    }
    Ok(report)
}

/// The undo command as it would run now (the WireGuard form lists what would remain).
fn undo_command(action: &Action, view: Option<&HostView>) -> Option<String> {
    let remaining = match action {
        Action::AllowedIp {
            interface,
            public_key,
            destination,
            ..
        } => view
            .and_then(|v| v.wireguard.get(interface))
            .and_then(|r| r.as_ref().ok())
            .and_then(|peers| peers.iter().find(|p| &p.public_key == public_key))
            .map(|p| {
                let ours = format!("{destination}/32");
                p.allowed_ip_strings()
                    .into_iter()
                    .filter(|a| *a != ours)
                    .collect::<Vec<_>>()
            }),
        _ => None,
    };
    action.undo_command(remaining.as_deref())
}

fn status_rows(report: &PassReport) -> Vec<ClaimStatusRow> {
    report
        .claims
        .iter()
        .map(|c| ClaimStatusRow {
            claim: c.claim.clone(),
            address: c.address.clone(),
            phase: c.phase.as_str().into(),
            reason: c.reason.into(),
            message: c.message.clone(),
            actions_json: serde_json::to_string(&c.actions).unwrap_or_else(|_| "[]".into()),
            dry_run: !report.live,
            updated_at: report.at,
        })
        .collect()
}

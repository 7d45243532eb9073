//! One apply pass: plan against the host, then (live) install what is missing and withdraw
//! what no claim wants any more. Dry-run reads the host but changes nothing, not even the
//! journal.

use std::collections::{BTreeMap, HashSet};

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
    let journal = store.journal()?;
    let no_claims = router
        .specs(routerd_model::resource::pick::remote_address_claim)
        .next()
        .is_none();
    if no_claims && journal.is_empty() {
        // Nothing to plan and nothing to withdraw: leave the host unread (a full routing table
        // is not dumped every 30 s for nothing).
        let report = PassReport {
            live: opts.live,
            at: now,
            host_error: None,
            claims: Vec::new(),
            withdrawals: Vec::new(),
        };
        if opts.record {
            store.replace_claim_statuses(&[])?;
        }
        return Ok(report);
    }
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
    let journaled: HashSet<&str> = journal.iter().map(|j| j.key.as_str()).collect();
    let live = host.as_ref().filter(|_| opts.live).zip(view.as_ref());

    let mut claims = Vec::with_capacity(plans.len());
    let mut desired = HashSet::new();
    let mut held = HashSet::new();
    // (claim index, action index) of the actions this live pass must carry out.
    let mut todo = Vec::new();
    for p in &plans {
        if p.problem.is_some() {
            held.insert(p.claim.clone());
        }
        let mut actions = Vec::with_capacity(p.actions.len());
        for pa in &p.actions {
            desired.insert(pa.action.key());
            let state = match live {
                _ if pa.in_place => ActionState::InPlace,
                None => ActionState::WouldRun,
                Some(_) => {
                    todo.push((claims.len(), actions.len()));
                    ActionState::Applied
                }
            };
            actions.push(ActionOutcome {
                state,
                command: pa.action.command(),
                action: pa.action.clone(),
                error: String::new(),
            });
        }
        claims.push(ClaimOutcome {
            claim: p.claim.clone(),
            address: p.address.clone(),
            route_name: p.route_name.clone(),
            phase: Phase::Installed,
            reason: p.problem.as_ref().map_or("", |pr| pr.reason),
            message: p
                .problem
                .as_ref()
                .map(|pr| pr.message.clone())
                .unwrap_or_default(),
            actions,
        });
    }

    if let Some((host, view)) = live.filter(|_| !todo.is_empty()) {
        // Intents first, in one transaction: a crash after a change still leaves a record.
        let intents: Vec<(String, &str, String)> = todo
            .iter()
            .map(|&(c, a)| (&claims[c], &claims[c].actions[a].action))
            .filter(|(_, action)| action.is_withdrawable())
            .map(|(c, action)| {
                let json = serde_json::to_string(&action.journal_form()).unwrap_or_default();
                (action.key(), c.claim.as_str(), json)
            })
            .collect();
        let rows: Vec<(&str, &str, &str)> = intents
            .iter()
            .map(|(k, c, j)| (k.as_str(), *c, j.as_str()))
            .collect();
        store.journal_record_many(&rows)?;
        let errors = execute(host, view, &claims, &todo).await;
        let mut forget = Vec::new();
        for ((c, a), error) in todo.iter().zip(errors) {
            if let Some(e) = error {
                let outcome = &mut claims[*c].actions[*a];
                outcome.state = ActionState::Failed;
                outcome.error = e;
                let key = outcome.action.key();
                if outcome.action.is_withdrawable() && !journaled.contains(key.as_str()) {
                    forget.push(key);
                }
            }
        }
        store.journal_remove_many(&forget.iter().map(String::as_str).collect::<Vec<_>>())?;
    }

    for (c, p) in claims.iter_mut().zip(&plans) {
        if let Some(problem) = &p.problem {
            c.phase = if problem.pending {
                Phase::Pending
            } else {
                Phase::Error
            };
            continue;
        }
        let failed = c.actions.iter().find(|a| a.state == ActionState::Failed);
        (c.phase, c.reason, c.message) = match failed {
            Some(f) => (
                Phase::Error,
                "ApplyFailed",
                format!("{}: {}", f.command, f.error),
            ),
            None if c.actions.iter().any(|a| a.state == ActionState::WouldRun) => {
                (Phase::Planned, "", String::new())
            }
            None => (Phase::Installed, "", String::new()),
        };
    }

    let mut withdrawals = Vec::new();
    let mut due_actions = Vec::new();
    let mut leaving = Vec::new();
    for entry in &journal {
        if desired.contains(&entry.key) || held.contains(&entry.claim) {
            if opts.live && entry.withdraw_after.is_some() {
                store.journal_hold(&entry.key)?;
            }
        } else {
            leaving.push(entry);
        }
    }
    // Live: schedule every withdrawal in one transaction (the deadline only moves earlier).
    let scheduled = if opts.live {
        let keys: Vec<&str> = leaving.iter().map(|e| e.key.as_str()).collect();
        store.journal_withdraw_many(&keys, now.add(opts.withdraw_grace))?
    } else {
        vec![None; leaving.len()]
    };
    for (entry, scheduled) in leaving.into_iter().zip(scheduled) {
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
        if let Some(due) = scheduled {
            w.due = due;
        }
        if now >= w.due {
            w.state = match (live, action) {
                (None, _) => WithdrawalState::WouldWithdraw,
                (Some(_), None) => {
                    w.error = "the journal entry cannot be read; remove it by hand".into();
                    WithdrawalState::Failed
                }
                (Some(_), Some(action)) => {
                    due_actions.push((withdrawals.len(), action));
                    WithdrawalState::Withdrawn
                }
            };
        }
        withdrawals.push(w);
    }
    if let Some((host, view)) = live.filter(|_| !due_actions.is_empty()) {
        let errors = undo(host, view, &due_actions).await;
        let mut gone = Vec::new();
        for ((i, _), error) in due_actions.iter().zip(errors) {
            match error {
                None => gone.push(withdrawals[*i].key.clone()),
                Some(e) => {
                    withdrawals[*i].state = WithdrawalState::Failed;
                    withdrawals[*i].error = e;
                }
            }
        }
        store.journal_remove_many(&gone.iter().map(String::as_str).collect::<Vec<_>>())?;
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

/// Carries out the `todo` actions: one netlink request each, and one WireGuard call per peer
/// for all its new allowed IPs. Returns each action's error, in order.
async fn execute(
    host: &Host,
    view: &HostView,
    claims: &[ClaimOutcome],
    todo: &[(usize, usize)],
) -> Vec<Option<String>> {
    let actions: Vec<&Action> = todo
        .iter()
        .map(|&(c, a)| &claims[c].actions[a].action)
        .collect();
    let mut errors = vec![None; actions.len()];
    let mut peers: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    // Address removals first: deleting an interface's last IPv4 address makes the kernel flush
    // its neighbour table, proxy entries included.
    let mut order: Vec<usize> = (0..actions.len()).collect();
    order.sort_by_key(|&i| !matches!(actions[i], Action::RemoveAddress { .. }));
    for i in order {
        let action = actions[i];
        match action {
            Action::AllowedIp {
                interface,
                public_key,
                ..
            } => peers.entry((interface, public_key)).or_default().push(i),
            _ => {
                errors[i] = host
                    .install(view, action)
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
        }
    }
    for ((interface, key), members) in peers {
        let ips: Vec<_> = members
            .iter()
            .filter_map(|&i| destination(actions[i]))
            .collect();
        if let Err(e) = host.add_allowed_ips(interface, key, &ips) {
            for i in members {
                errors[i] = Some(e.to_string());
            }
        }
    }
    errors
}

/// Undoes the due withdrawals, grouped like [`execute`]. Returns each one's error, in order.
async fn undo(host: &Host, view: &HostView, due: &[(usize, Action)]) -> Vec<Option<String>> {
    let mut errors = vec![None; due.len()];
    let mut peers: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, (_, action)) in due.iter().enumerate() {
        match action {
            Action::AllowedIp {
                interface,
                public_key,
                ..
            } => peers.entry((interface, public_key)).or_default().push(i),
            _ => errors[i] = host.undo(view, action).await.err().map(|e| e.to_string()),
        }
    }
    for ((interface, key), members) in peers {
        let ips: Vec<_> = members
            .iter()
            .filter_map(|&i| destination(&due[i].1))
            .collect();
        if let Err(e) = host.remove_allowed_ips(view, interface, key, &ips) {
            for i in members {
                errors[i] = Some(e.to_string());
            }
        }
    }
    errors
}

fn destination(a: &Action) -> Option<std::net::Ipv4Addr> {
    match a {
        Action::AllowedIp { destination, .. } => Some(*destination),
        _ => None,
    }
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

/// What `routerctl claims` keeps of an action: its state and the host object it names (the
/// full `wg set` list would make the stored status grow with the square of the claims).
#[derive(Serialize)]
struct StoredAction<'a> {
    state: ActionState,
    key: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
}

fn compact(actions: &[ActionOutcome]) -> Vec<StoredAction<'_>> {
    actions
        .iter()
        .map(|a| StoredAction {
            state: a.state,
            key: a.action.key(),
            error: &a.error,
        })
        .collect()
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
            actions_json: serde_json::to_string(&compact(&c.actions))
                .unwrap_or_else(|_| "[]".into()),
            dry_run: !report.live,
            updated_at: report.at,
        })
        .collect()
}

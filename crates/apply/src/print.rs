//! The report as an operator reads it: one line per claim, then one per action written as the
//! equivalent `ip` or `wg` command, with what happened to it.

use std::fmt::Write;

use crate::pass::{ActionState, PassReport, WithdrawalState};

pub const DRY_RUN_HEADER: &str = "DRY RUN: nothing on the host is changed. To apply, run `routerd apply --live` (or `routerd serve --live`).";
pub const LIVE_HEADER: &str = "LIVE: applying RemoteAddressClaims to the host.";

/// The whole report, header first.
pub fn text(report: &PassReport) -> String {
    let mut out = String::new();
    out.push_str(if report.live {
        LIVE_HEADER
    } else {
        DRY_RUN_HEADER
    });
    out.push('\n');
    if let Some(e) = &report.host_error {
        let _ = writeln!(
            out,
            "warning: cannot read the host ({e}); every action is shown as to be done"
        );
    }
    out.push_str(&body(report));
    out
}

/// Everything but the header: what the daemon compares to log a dry-run plan only when it
/// changes.
pub fn body(report: &PassReport) -> String {
    let mut out = String::new();
    if report.claims.is_empty() {
        out.push_str("no RemoteAddressClaim in the effective config\n");
    }
    for c in &report.claims {
        let _ = write!(
            out,
            "RemoteAddressClaim {} ({}): {}",
            c.claim,
            c.address,
            c.phase.as_str()
        );
        if !c.reason.is_empty() {
            let _ = write!(out, " ({})", c.reason);
        }
        if !c.message.is_empty() && c.actions.is_empty() {
            let _ = write!(out, ": {}", c.message);
        }
        out.push('\n');
        for a in &c.actions {
            let label = match a.state {
                ActionState::InPlace => "in place ",
                ActionState::WouldRun => "would run",
                ActionState::Applied => "applied  ",
                ActionState::Failed => "FAILED   ",
            };
            let _ = write!(out, "  {label}  {}", a.command);
            if !a.error.is_empty() {
                let _ = write!(out, ": {}", a.error);
            }
            out.push('\n');
        }
    }
    for w in &report.withdrawals {
        let cmd = w.command.as_deref().unwrap_or(&w.key);
        let line = match w.state {
            WithdrawalState::Waiting => format!("withdraw at {}  {cmd}", w.due.to_rfc3339_secs()),
            WithdrawalState::WouldWithdraw => format!("would withdraw  {cmd}"),
            WithdrawalState::Withdrawn => format!("withdrawn  {cmd}"),
            WithdrawalState::Failed => format!("withdraw FAILED  {cmd}: {}", w.error),
        };
        let _ = writeln!(out, "  {line}  (RemoteAddressClaim {} is gone)", w.claim);
    }
    out
}

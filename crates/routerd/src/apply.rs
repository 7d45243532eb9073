//! `routerd apply`: one apply pass over the effective config (startup + active dynamic parts).

use std::process::ExitCode;

use anyhow::Context;
use routerd_apply::{pass, Options, PassReport, Phase};
use routerd_model::GoDuration;
use routerd_state::Store;

use crate::cli::{ApplyArgs, ApplyModeArgs};
use crate::output::{self, Format};

pub fn run(a: &ApplyArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !(a.mode.live && a.dry_run),
        "--live and --dry-run contradict each other; leave out --dry-run (it is the default)"
    );
    let format = Format::parse(&a.output, &[Format::Text, Format::Json])?;
    let opts = options(&a.mode, a.mode.live)?;
    let router = crate::load_config(&a.config.config)?;
    // A dry run never creates the state file; a live run must keep its journal there.
    let store = if a.mode.live || a.state.state_file.exists() {
        if a.mode.live {
            crate::open_store(&a.state.state_file)?
        } else {
            crate::open_store_read_only(&a.state.state_file)?
        }
    } else {
        Store::open_in_memory(crate::clock())?
    };
    let report = one_pass(&store, &router, &opts)?;
    match format {
        Format::Json => print!("{}", output::json(&report)),
        _ => print!("{}", routerd_apply::print::text(&report)),
    }
    let failed = report.claims.iter().any(|c| c.phase == Phase::Error)
        || report
            .withdrawals
            .iter()
            .any(|w| w.state == routerd_apply::pass::WithdrawalState::Failed);
    Ok(if a.mode.live && failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The pass options of `apply` and `serve`; `record` stores the outcome for `routerctl claims`.
pub(crate) fn options(m: &ApplyModeArgs, record: bool) -> anyhow::Result<Options> {
    let grace = GoDuration::parse(&m.withdraw_grace)
        .map_err(|e| anyhow::anyhow!("--withdraw-grace {:?}: {e}", m.withdraw_grace))?;
    anyhow::ensure!(
        grace.as_nanos() >= 0,
        "--withdraw-grace must not be negative"
    );
    Ok(Options {
        live: m.live,
        withdraw_grace: grace,
        record,
    })
}

/// Merges the stored parts into `router` and runs one pass on a runtime of its own.
pub(crate) fn one_pass(
    store: &Store,
    router: &routerd_model::Router,
    opts: &Options,
) -> anyhow::Result<PassReport> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(merged_pass(store, router, opts))
}

pub(crate) async fn merged_pass(
    store: &Store,
    router: &routerd_model::Router,
    opts: &Options,
) -> anyhow::Result<PassReport> {
    let parts = store.list_parts()?;
    let effective =
        routerd_dynamic::merge(router, &parts, store.now()).context("build effective config")?;
    Ok(pass(store, &effective.router, opts).await?)
}

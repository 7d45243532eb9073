//! `routerd serve`: the pipeline's stages on one current-thread runtime.

use std::process::ExitCode;
use std::time::Duration;

use routerd_model::Router;
use routerd_state::Store;
use routerd_subscribe::{Controller, PassReport, Phase};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ServeArgs;

/// How often the subscription controller runs (Go: 5 s).
const SUBSCRIPTION_INTERVAL: Duration = Duration::from_secs(5);

pub fn run(a: &ServeArgs) -> anyhow::Result<ExitCode> {
    let router = crate::load_config(&a.config.config)?;
    let store = crate::open_store(&a.state.state_file)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if a.once {
        // One pass of every stage that needs no listener; nothing is bound, no secret read.
        let report = rt.block_on(Controller::once().pass(&store, &router, store.now()));
        print_report(&report);
        return Ok(ExitCode::SUCCESS);
    }
    rt.block_on(daemon(a, router, store))?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &PassReport) {
    for s in &report.subscriptions {
        let mut line = format!(
            "subscription {}: {:?} ({} event(s) matched)",
            s.name, s.phase, s.matched
        );
        for p in &s.parts {
            line.push_str(&format!(" stored {p}"));
        }
        if !s.message.is_empty() {
            line.push_str(&format!(": {}", s.message));
        }
        println!("{line}");
    }
}

async fn daemon(a: &ServeArgs, mut router: Router, store: Store) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut controller = Controller::new();
    tracing::info!(config = %a.config.config.display(), state = %a.state.state_file.display(), "routerd serving");
    loop {
        let report = controller.pass(&store, &router, store.now()).await;
        for s in report
            .subscriptions
            .iter()
            .filter(|s| matches!(s.phase, Phase::Degraded | Phase::Pending))
        {
            tracing::warn!(subscription = %s.name, "{:?}: {}", s.phase, s.message);
        }
        // Wake for the next tick, or earlier when a batch window closes.
        let mut wait = SUBSCRIPTION_INTERVAL;
        if let Some(due) = report.next_due {
            let until = due.since(store.now()).to_std();
            wait = wait.min(until.max(Duration::from_millis(10)));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match crate::load_config(&a.config.config) {
                Ok(new) => {
                    tracing::info!("config reloaded");
                    router = new;
                }
                Err(e) => tracing::error!("config reload refused, keeping the running config: {e:#}"),
            },
        }
    }
    tracing::info!("routerd stopped");
    Ok(())
}

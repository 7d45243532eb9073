//! `routerd serve`: every stage of the pipeline in one process on one current-thread runtime.
//!
//! Per EventGroup: a receiver (when `listen` is set), an outbox loop and a prune loop, sharing
//! one database connection; per ClientObserver: a netlink observer with its own connection
//! (so the outbox sees its writes as another connection's and wakes at once). The subscription controller has its own connection (a plugin run
//! can take seconds and must not block the receiver). SIGTERM/SIGINT stop accepting, let
//! in-flight work finish and exit 0; SIGHUP reloads the config, keeping the running one when
//! the new one is invalid.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use routerd_federation::{outbox, receiver, GroupConfig, Outbox, Receiver, Scope};
use routerd_model::Router;
use routerd_state::Store;
use routerd_subscribe::{Controller, PassReport, Phase};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::cli::ServeArgs;
use routerd_apply::Options;

/// How often the subscription controller runs (Go: 5 s).
const SUBSCRIPTION_INTERVAL: Duration = Duration::from_secs(5);
/// The outbox's regular pass (Go: 10 s).
const PUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Retention (Go: 1 m).
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a wake-up waits for the rest of a burst of database writes.
const COALESCE: Duration = Duration::from_millis(50);
/// How long a stop waits for in-flight work.
const STOP_GRACE: Duration = Duration::from_secs(4);

pub fn run(a: &ServeArgs) -> anyhow::Result<ExitCode> {
    let apply = crate::apply::options(&a.apply, true)?;
    let router = crate::load_config(&a.config.config)?;
    let groups = GroupConfig::all(&router)?;
    let store = crate::open_store(&a.state.state_file)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if a.once {
        rt.block_on(once(&router, &groups, store, &a.state.state_file, &apply))?;
        return Ok(ExitCode::SUCCESS);
    }
    rt.block_on(daemon(a, router, store, apply))?;
    Ok(ExitCode::SUCCESS)
}

/// One pass of every stage that needs no listener; binds nothing. A group's secret is read
/// only when it has something to push.
async fn once(
    router: &Router,
    groups: &[GroupConfig],
    store: Store,
    db: &Path,
    apply: &Options,
) -> anyhow::Result<()> {
    for cfg in routerd_observe::observers(router)? {
        let name = cfg.name.clone();
        let mut observer = routerd_observe::Observer::new(cfg, crate::open_store(db)?)?;
        observer
            .run_once()
            .await
            .with_context(|| format!("ClientObserver {name}"))?;
        println!(
            "observer {name}: {} client(s), {} event(s) written",
            observer.tracked(),
            observer.written()
        );
    }
    let report = Controller::once().pass(&store, router, store.now()).await;
    print_report(&report);
    let applied = crate::apply::merged_pass(&store, router, apply).await?;
    print!("{}", routerd_apply::print::text(&applied));
    let shared = Arc::new(Mutex::new(store));
    let (_stop, stopped) = watch::channel(false);
    for g in groups {
        outbox::prune_pass(g, &shared)?;
        let stats = Outbox::new(g.clone(), shared.clone())
            .pass(Scope::All, &stopped)
            .await?;
        if stats.delivered + stats.failed > 0 {
            println!(
                "group {}: pushed {} delivered, {} failed",
                g.group, stats.delivered, stats.failed
            );
        }
    }
    Ok(())
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

/// The transport tasks of every group, stopped together.
struct Transport {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Transport {
    /// Binds every receiver first, so a bad listen address or secret fails the start.
    async fn start(
        router: &Router,
        groups: Vec<GroupConfig>,
        db: &Path,
        stored: Arc<Notify>,
        changes: Option<watch::Receiver<u64>>,
        apply: &Options,
    ) -> anyhow::Result<Transport> {
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Mutex::new(crate::open_store(db)?));
        let mut tasks = JoinSet::new();
        for g in groups {
            if let Some(addr) = g.listen {
                let secret = routerd_federation::group::read_secret(&g.group, &g.secret_file)?;
                let (listener, device) = receiver::bind(addr).map_err(anyhow::Error::msg)?;
                tracing::info!(group = %g.group, node = %g.node_name, %addr, device = %device.as_deref().unwrap_or("-"), "receiver listening");
                let r = Arc::new(Receiver {
                    group: g.clone(),
                    secret,
                    store: shared.clone(),
                    counters: Default::default(),
                    stored: Some(stored.clone()),
                });
                tasks.spawn(receiver::serve(listener, r, stopped.clone()));
            }
            tasks.spawn(outbox_loop(
                g.clone(),
                shared.clone(),
                stopped.clone(),
                changes.clone(),
            ));
            tasks.spawn(prune_loop(g, shared.clone(), stopped.clone()));
        }
        for cfg in routerd_observe::observers(router)? {
            let name = cfg.name.clone();
            let mut observer = routerd_observe::Observer::new(cfg, crate::open_store(db)?)?;
            let stopped = stopped.clone();
            tracing::info!(observer = %name, "client observer starting");
            tasks.spawn(async move {
                if let Err(e) = observer.run(stopped).await {
                    tracing::error!(observer = %name, "client observer stopped: {e}");
                }
            });
        }
        tasks.spawn(apply_loop(
            router.clone(),
            crate::open_store(db)?,
            apply.clone(),
            stopped.clone(),
            changes,
        ));
        Ok(Transport { tasks, stop })
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("in-flight work did not finish within {STOP_GRACE:?}; stopping anyway");
            self.tasks.abort_all();
        }
    }
}

async fn outbox_loop(
    group: GroupConfig,
    store: Arc<Mutex<Store>>,
    mut stopped: watch::Receiver<bool>,
    changes: Option<watch::Receiver<u64>>,
) {
    let mut outbox = Outbox::new(group.clone(), store.clone());
    let mut changes = changes;
    let mut seen_version = store
        .lock()
        .map(|s| s.data_version().unwrap_or(0))
        .unwrap_or(0);
    let mut scope = Scope::All;
    loop {
        if let Err(e) = outbox.pass(scope, &stopped).await {
            tracing::error!(group = %group.group, "outbox: {e}");
        }
        let tick = tokio::time::sleep(PUSH_INTERVAL);
        tokio::pin!(tick);
        scope = loop {
            tokio::select! {
                _ = &mut tick => break Scope::All,
                _ = stopped.changed() => return,
                changed = wait_change(&mut changes) => {
                    if !changed { changes = None; continue; }
                    // Only writes by other connections (routerctl, the controller) count.
                    let v = store.lock().map(|s| s.data_version().unwrap_or(0)).unwrap_or(0);
                    if v != seen_version {
                        seen_version = v;
                        break Scope::New;
                    }
                }
            }
        };
    }
}

/// Waits for the next database change; `false` when there is no watcher (or it ended).
/// A burst of writes (an observer seeing a switch full of clients) wakes a stage once.
async fn wait_change(changes: &mut Option<watch::Receiver<u64>>) -> bool {
    match changes {
        Some(rx) => {
            if rx.changed().await.is_err() {
                return false;
            }
            tokio::time::sleep(COALESCE).await;
            rx.borrow_and_update();
            true
        }
        None => std::future::pending().await,
    }
}

async fn prune_loop(
    group: GroupConfig,
    store: Arc<Mutex<Store>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = outbox::prune_pass(&group, &store) {
            tracing::error!(group = %group.group, "prune: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn daemon(
    a: &ServeArgs,
    mut router: Router,
    store: Store,
    apply: Options,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let db = a.state.state_file.clone();
    let changes = match routerd_federation::watch::watch_database(&db) {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(
                "cannot watch {} ({e}); routerctl writes are seen at the next regular pass",
                db.display()
            );
            None
        }
    };
    let stored = Arc::new(Notify::new());
    let mut transport = Transport::start(
        &router,
        GroupConfig::all(&router)?,
        &db,
        stored.clone(),
        changes.clone(),
        &apply,
    )
    .await
    .context("start federation")?;
    let mut controller = Controller::new();
    let mut changes = changes;
    let mut seen_version = store.data_version().unwrap_or(0);
    tracing::info!(config = %a.config.config.display(), state = %db.display(), "routerd serving");
    loop {
        let report = controller.pass(&store, &router, store.now()).await;
        for s in report
            .subscriptions
            .iter()
            .filter(|s| matches!(s.phase, Phase::Degraded | Phase::Pending))
        {
            tracing::warn!(subscription = %s.name, "{:?}: {}", s.phase, s.message);
        }
        // Wake for the next tick, or earlier when a batch window closes or new events arrive.
        let mut wait = SUBSCRIPTION_INTERVAL;
        if let Some(due) = report.next_due {
            wait = wait.min(
                due.since(store.now())
                    .to_std()
                    .max(Duration::from_millis(10)),
            );
        }
        let tick = tokio::time::sleep(wait);
        tokio::pin!(tick);
        let stop = loop {
            tokio::select! {
                _ = &mut tick => break false,
                _ = stored.notified() => break false,
                changed = wait_change(&mut changes) => {
                    if !changed { changes = None; continue; }
                    let v = store.data_version().unwrap_or(0);
                    if v != seen_version { seen_version = v; break false; }
                }
                _ = term.recv() => break true,
                _ = int.recv() => break true,
                _ = hup.recv() => match reload(&a.config.config) {
                    Ok((new, groups)) => {
                        transport.stop().await;
                        match Transport::start(&new, groups, &db, stored.clone(), changes.clone(), &apply).await {
                            Ok(t) => {
                                transport = t;
                                router = new;
                                tracing::info!("config reloaded");
                            }
                            Err(e) => {
                                tracing::error!("config reload failed to start ({e:#}); restarting the previous transport");
                                transport = Transport::start(&router, GroupConfig::all(&router)?, &db, stored.clone(), changes.clone(), &apply).await?;
                            }
                        }
                        break false;
                    }
                    Err(e) => tracing::error!("config reload refused, keeping the running config: {e:#}"),
                },
            }
        };
        if stop {
            break;
        }
    }
    transport.stop().await;
    tracing::info!("routerd stopped");
    Ok(())
}

/// The apply stage: a pass when the stored parts change (a new, updated or deleted part), when
/// a part expires or a withdrawal falls due, and every 30 s (Go's route/SAM controllers).
/// Its own writes (journal, statuses) do not wake it: it compares the parts' fingerprint.
async fn apply_loop(
    router: Router,
    mut store: Store,
    opts: Options,
    mut stopped: watch::Receiver<bool>,
    mut changes: Option<watch::Receiver<u64>>,
) {
    let mode = if opts.live { "live" } else { "dry-run" };
    tracing::info!(
        "apply stage running ({mode}, withdraw grace {})",
        opts.withdraw_grace
    );
    let mut last_body = String::new();
    let mut last_error = String::new();
    loop {
        let fingerprint = store.parts_fingerprint().ok();
        let mut wake = APPLY_INTERVAL;
        // A pass holds its connection across netlink awaits, so it runs on a thread of its own
        // (the connection is Send, not Sync) and hands the connection back.
        let (router_c, opts_c) = (router.clone(), opts.clone());
        let result;
        (store, result) = match tokio::task::spawn_blocking(move || {
            let r = crate::apply::one_pass(&store, &router_c, &opts_c);
            (store, r)
        })
        .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("apply pass panicked: {e}");
                return;
            }
        };
        match result {
            Ok(report) => {
                last_error.clear();
                let body = routerd_apply::print::body(&report);
                if opts.live {
                    log_live(&report);
                } else if body != last_body {
                    tracing::info!(
                        "apply plan (dry run; --live applies it):\n{}",
                        body.trim_end()
                    );
                }
                last_body = body;
                wake = wake.min(next_due(&store, &report));
            }
            Err(e) => {
                let text = format!("{e:#}");
                if text != last_error {
                    tracing::error!("apply: {text}");
                }
                last_error = text;
            }
        }
        let tick = tokio::time::sleep(wake);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut tick => break,
                _ = stopped.changed() => return,
                changed = wait_change(&mut changes) => {
                    if !changed { changes = None; continue; }
                    if store.parts_fingerprint().ok() != fingerprint { break; }
                }
            }
        }
    }
}

/// How often the apply stage runs without a reason (Go: 30 s).
const APPLY_INTERVAL: Duration = Duration::from_secs(30);

/// The sooner of the next part expiry and the next withdrawal due.
fn next_due(store: &Store, report: &routerd_apply::PassReport) -> Duration {
    let now = store.now();
    let parts = store.list_parts().unwrap_or_default();
    parts
        .iter()
        .map(|p| p.expires_at)
        .filter(|t| *t > now)
        .chain(
            report
                .withdrawals
                .iter()
                .filter(|w| w.state == routerd_apply::pass::WithdrawalState::Waiting)
                .map(|w| w.due),
        )
        .map(|t| t.since(now).to_std() + Duration::from_millis(100))
        .min()
        .unwrap_or(APPLY_INTERVAL)
}

fn log_live(report: &routerd_apply::PassReport) {
    use routerd_apply::pass::{ActionState, WithdrawalState};
    for c in &report.claims {
        for a in &c.actions {
            match a.state {
                ActionState::Applied => tracing::info!(claim = %c.claim, "applied: {}", a.command),
                ActionState::Failed => {
                    tracing::error!(claim = %c.claim, "failed: {}: {}", a.command, a.error)
                }
                _ => {}
            }
        }
        if c.actions.is_empty() && !c.reason.is_empty() {
            tracing::debug!(claim = %c.claim, "{:?} ({}): {}", c.phase, c.reason, c.message);
        }
    }
    for w in &report.withdrawals {
        let cmd = w.command.as_deref().unwrap_or(&w.key);
        match w.state {
            WithdrawalState::Withdrawn => tracing::info!(claim = %w.claim, "withdrawn: {cmd}"),
            WithdrawalState::Failed => {
                tracing::error!(claim = %w.claim, "withdraw failed: {cmd}: {}", w.error)
            }
            _ => {}
        }
    }
}

fn reload(path: &Path) -> anyhow::Result<(Router, Vec<GroupConfig>)> {
    let router = crate::load_config(path)?;
    let groups = GroupConfig::all(&router)?;
    Ok((router, groups))
}

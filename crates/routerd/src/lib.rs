//! The one routerd-edge binary: `routerd` (daemon verbs) and `routerctl` (operator verbs),
//! chosen by the name it was started under. This crate wires the stage crates together and
//! prints; the work itself lives in them:
//!
//! - `routerd-model`: config, Kinds, validation, the event envelope;
//! - `routerd-state`: the SQLite state database;
//! - `routerd-subscribe`: EventSubscription controller and plugin runner;
//! - `routerd-dynamic`: merge/render/diff of the effective config;
//! - `routerd-federation` and `routerd-observe`: the transport and the LAN client observer;
//! - `routerd-apply`: RemoteAddressClaims onto the host (dry-run unless --live).
//!
//! Modules here: [`cli`] (clap), [`output`] (tables/JSON/YAML), one module per command group
//! (`ctl_federation`, `ctl_dynamic`, `ctl_plugin`, `ctl_claims`) and the daemon verbs (`serve`,
//! `apply`, `demo`).

mod apply;
pub mod cli;
mod ctl_claims;
mod ctl_dynamic;
mod ctl_federation;
mod ctl_plugin;
mod demo;
pub mod output;
mod serve;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use routerd_state::{Clock, Store, SystemClock};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the program for `args` (argv[0] first) and returns the exit code.
pub fn main_from(args: Vec<OsString>) -> ExitCode {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // OpenWrt's feed CI greps the bare version from `--version`.
    if matches!(
        args.get(1).and_then(|a| a.to_str()),
        Some("--version" | "-version" | "-V")
    ) {
        println!("{VERSION}");
        return ExitCode::SUCCESS;
    }
    // Commands that print should end quietly when their reader goes away (`| head`), as other
    // Unix tools do; Rust ignores SIGPIPE and would panic on the failed write instead. The
    // daemon keeps ignoring it: its output is logd's pipe and a broken log must not kill it.
    if !args.iter().skip(1).any(|a| a == "serve") {
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: set once, before any thread starts; the default action needs no handler.
        unsafe {
            let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
        }
    }
    let args = cli::normalize_go_flags(args);
    let result = if name.starts_with("routerctl") {
        run_routerctl(args)
    } else {
        run_routerd(args)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!(
                "{}: {e:#}",
                if name.starts_with("routerctl") {
                    "routerctl"
                } else {
                    "routerd"
                }
            );
            ExitCode::FAILURE
        }
    }
}

fn run_routerd(args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let cli = match parse::<cli::RouterdCli>(args) {
        Ok(c) => c,
        Err(e) => return Ok(clap_exit(e)),
    };
    init_logging();
    match cli.command {
        cli::RouterdCommand::Serve(a) => serve::run(&a),
        cli::RouterdCommand::Validate(a) => validate(&a.config),
        cli::RouterdCommand::Apply(a) => apply::run(&a),
        cli::RouterdCommand::Demo(a) => demo::run(&a),
    }
}

/// Runs the `routerctl` CLI; also used in-process by `routerd demo`.
pub fn run_routerctl(args: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let cli = match parse::<cli::RouterctlCli>(args) {
        Ok(c) => c,
        Err(e) => return Ok(clap_exit(e)),
    };
    init_logging();
    match cli.command {
        cli::CtlCommand::Federation(c) => ctl_federation::run(c),
        cli::CtlCommand::Dynamic(c) => ctl_dynamic::run(c),
        cli::CtlCommand::Plugin(c) => ctl_plugin::run(c),
        cli::CtlCommand::Claims(a) => ctl_claims::run(&a),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Parses with Go's rule that a repeated flag overrides the earlier value, at every level.
fn parse<T: CommandFactory + FromArgMatches>(args: Vec<OsString>) -> Result<T, clap::Error> {
    fn last_wins(cmd: clap::Command) -> clap::Command {
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        subs.iter().fold(cmd.args_override_self(true), |cmd, name| {
            cmd.mut_subcommand(name, last_wins)
        })
    }
    T::from_arg_matches(&last_wins(T::command()).try_get_matches_from(args)?)
}

/// Help goes to stdout with exit 0; usage errors to stderr with exit 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Logs go to stderr; `RUST_LOG=debug|info|warn|error` picks the level (default info).
fn init_logging() {
    let level = match std::env::var("RUST_LOG")
        .unwrap_or_default()
        .to_lowercase()
        .as_str()
    {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub(crate) fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

pub(crate) fn open_store(path: &Path) -> anyhow::Result<Store> {
    Ok(Store::open(path, clock())?)
}

pub(crate) fn open_store_read_only(path: &Path) -> anyhow::Result<Store> {
    Ok(Store::open_read_only(path, clock())?)
}

/// Loads and validates the config; warnings go to stderr.
pub(crate) fn load_config(path: &Path) -> anyhow::Result<routerd_model::Router> {
    let loaded = routerd_model::load_file(path)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded.router)
}

fn validate(arg: &Path) -> anyhow::Result<ExitCode> {
    match routerd_model::load_file(arg) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            println!(
                "config {} is valid ({} resources)",
                arg.display(),
                loaded.router.spec.resources.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(routerd_model::ConfigError::Invalid { origin, problems }) => {
            eprintln!(
                "config {origin} is invalid ({} problem(s)):",
                problems.len()
            );
            for p in &problems {
                eprintln!("  - {p}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("validate"),
    }
}

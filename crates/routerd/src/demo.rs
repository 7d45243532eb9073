//! `routerd demo`: the receiver flow of the README on the embedded example config, with a
//! temporary state file. It runs the same command paths as the real CLI, in-process.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{DemoArgs, ServeArgs};

const EXAMPLE: &str = include_str!("../../../examples/receiver-cloud.yaml");
const PACKAGED_PLUGIN: &str =
    "/usr/libexec/routerd/plugins/event-to-remote-claim/bin/event-to-remote-claim";

fn find_plugin(a: &DemoArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &a.plugin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locate this binary")?;
    let beside = exe.with_file_name("event-to-remote-claim");
    for candidate in [beside, PathBuf::from(PACKAGED_PLUGIN)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "the event-to-remote-claim plugin was not found next to {} or at {PACKAGED_PLUGIN}; build it with `cargo build --release` or pass --plugin",
        exe.display()
    )
}

pub fn run(a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let plugin = find_plugin(a)?;
    let dir = tempdir()?;
    let config = dir.join("router.yaml");
    let state = dir.join("routerd.db");
    std::fs::write(
        &config,
        EXAMPLE.replace(PACKAGED_PLUGIN, &plugin.display().to_string()),
    )?;

    let step = |title: &str, cmd: &[&str]| {
        println!("\n$ {title}");
        let args: Vec<OsString> = cmd.iter().map(OsString::from).collect();
        crate::run_routerctl(args)
    };
    println!(
        "routerd demo: receiver flow with the example config (state in {})",
        dir.display()
    );
    let state_s = state.display().to_string();
    let config_s = config.display().to_string();
    step(
        "routerctl federation event emit --group cloudedge --type routerd.client.ipv4.observed --subject 10.88.60.9/32 --source-node onprem-router --payload … --ttl 30m",
        &[
            "routerctl", "federation", "event", "emit", "--state-file", &state_s, "--group", "cloudedge", "--type",
            "routerd.client.ipv4.observed", "--subject", "10.88.60.9/32", "--source-node", "onprem-router",
            "--payload", "address=10.88.60.9/32", "--payload", "domain=cloudedge-same-subnet", "--payload",
            "ownerSide=onprem", "--payload", "peerRef=onprem-main", "--payload", "providerRef=example-provider",
            "--ttl", "30m",
        ],
    )?;
    println!("\n$ routerd serve --once --config router.yaml --state-file routerd.db");
    crate::serve::run(&ServeArgs {
        config: crate::cli::ConfigArg {
            config: config.clone(),
        },
        state: crate::cli::StateArg {
            state_file: state.clone(),
        },
        once: true,
        apply: crate::cli::ApplyModeArgs {
            live: false,
            withdraw_grace: "10m".into(),
        },
    })?;
    step(
        "routerctl dynamic list",
        &["routerctl", "dynamic", "list", "--state-file", &state_s],
    )?;
    step(
        "routerctl dynamic render --config router.yaml --state-file routerd.db",
        &[
            "routerctl",
            "dynamic",
            "render",
            "--config",
            &config_s,
            "--state-file",
            &state_s,
        ],
    )?;
    step(
        "routerctl claims --state-file routerd.db",
        &["routerctl", "claims", "--state-file", &state_s],
    )?;
    if a.keep {
        println!("\nkept {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh private directory under $TMPDIR.
fn tempdir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = base.join(format!("routerd-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

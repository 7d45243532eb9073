//! `routerctl plugin …`: the Plugin resources of the startup config.

use anyhow::bail;
use serde::Serialize;

use routerd_model::resource::pick;

use crate::cli::{PluginCommand, PluginListArgs, PluginRunArgs};
use crate::output::{self, cell, table, Format};

pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::List(a) => list(&a),
        PluginCommand::Run(a) => run_plugin(&a),
    }
}

const FORMATS: &[Format] = &[Format::Table, Format::Json, Format::Yaml];

#[derive(Serialize)]
struct PluginRow {
    name: String,
    executable: String,
    capabilities: String,
    triggers: String,
}

fn list(a: &PluginListArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, FORMATS)?;
    let router = crate::load_config(&a.config.config)?;
    let rows: Vec<PluginRow> = router
        .specs(pick::plugin)
        .map(|(r, s)| PluginRow {
            name: r.name().to_string(),
            executable: s.executable.clone(),
            capabilities: s.capabilities.join(","),
            triggers: s
                .triggers
                .iter()
                .map(
                    |t| match (t.trigger_type.as_str(), t.every.as_str(), t.topic.as_str()) {
                        ("interval", every, _) => format!("interval:{every}"),
                        (kind, _, "") => kind.to_string(),
                        (kind, _, topic) => format!("{kind}:{topic}"),
                    },
                )
                .collect::<Vec<_>>()
                .join(","),
        })
        .collect();
    let text = match format {
        Format::Json => output::json(&rows),
        Format::Yaml => output::yaml(&rows),
        _ => table(
            &["NAME", "EXECUTABLE", "CAPABILITIES", "TRIGGERS"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        cell(&r.executable),
                        cell(&r.capabilities),
                        cell(&r.triggers),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    };
    print!("{text}");
    Ok(())
}

fn run_plugin(a: &PluginRunArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, FORMATS)?;
    let router = crate::load_config(&a.config.config)?;
    let store = if a.dry_run {
        None
    } else {
        Some(crate::open_store(&a.state.state_file)?)
    };
    let now = crate::clock().now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = rt
        .block_on(routerd_subscribe::manual::run_manual(
            store.as_ref(),
            &router,
            &a.name,
            now,
        ))
        .map_err(anyhow::Error::msg)?;

    let o = &run.outcome;
    let text = match format {
        Format::Json | Format::Yaml => {
            let doc = serde_json::json!({
                "plugin": run.plugin,
                "source": run.source,
                "dryRun": run.dry_run,
                "stored": run.stored,
                "outcome": {
                    "exitCode": o.exit_code,
                    "hasExitCode": o.exit_code.is_some(),
                    "durationMs": o.duration.as_millis() as u64,
                    "stdoutDigest": o.stdout_digest,
                    "stderr": o.stderr,
                    "error": run.error,
                },
                "part": run.part.as_ref().map(|p| serde_json::json!({
                    "apiVersion": "config.routerd.net/v1alpha1",
                    "kind": "DynamicConfigPart",
                    "metadata": {"name": format!("{}-{}", p.source.replace('/', "-"), p.generation)},
                    "spec": {"source": p.source, "generation": p.generation, "observedAt": p.observed_at,
                             "expiresAt": p.expires_at, "digest": p.digest, "resources": p.resources,
                             "directives": p.directives},
                })),
                "summary": {
                    "resources": run.part.as_ref().map_or(0, |p| p.resources.len()),
                    "directives": run.part.as_ref().map_or(0, |p| p.directives.len()),
                    "actionPlans": run.action_plans.len(),
                    "events": run.events,
                    "actionPlansDisplayOnly": true,
                },
            });
            if format == Format::Json {
                output::json(&doc)
            } else {
                output::yaml(&doc)
            }
        }
        _ => {
            let mut rows = vec![
                vec!["Plugin:".to_string(), run.plugin.clone()],
                vec![
                    "Mode:".into(),
                    if run.dry_run {
                        "dry-run".into()
                    } else {
                        "stored".into()
                    },
                ],
                vec!["Source:".into(), run.source.clone()],
            ];
            if let Some(p) = &run.part {
                rows.push(vec!["Generation:".into(), p.generation.to_string()]);
                rows.push(vec!["Observed At:".into(), p.observed_at.display_cell()]);
                rows.push(vec!["Expires:".into(), p.expires_at.display_cell()]);
                rows.push(vec!["Digest:".into(), p.digest.clone()]);
            }
            let mut out = table(&[], &rows).trim_start_matches('\n').to_string();
            if let Some(p) = &run.part {
                out.push_str(&format!("Resources: {}\n", p.resources.len()));
                for r in &p.resources {
                    out.push_str(&format!(
                        "  -\t{}/{}/{}\n",
                        r.api_version, r.kind, r.metadata.name
                    ));
                }
                out.push_str(&format!("Directives: {}\n", p.directives.len()));
                out.push_str(&format!(
                    "Action Plans:\t{} display-only; not executed\n",
                    run.action_plans.len()
                ));
                out.push_str(&format!("Events: {}\n", run.events));
            }
            out
        }
    };
    print!("{text}");
    if let Some(e) = run.error {
        bail!(e);
    }
    Ok(())
}

//! `routerctl plugin run <name>`: the manual trigger, outside any subscription.

use routerd_model::resource::pick;
use routerd_model::{gojson, DynamicConfigPart, Router, Timestamp};
use routerd_state::{PluginRunResult, Store};

use crate::part::build;
use crate::protocol::{decode, validate, PluginRequest, Trigger};
use crate::runner::{self, Outcome};

pub struct ManualRun {
    pub plugin: String,
    pub source: String,
    pub dry_run: bool,
    pub stored: bool,
    pub outcome: Outcome,
    pub part: Option<DynamicConfigPart>,
    pub action_plans: Vec<serde_json::Value>,
    pub events: usize,
    /// The run's error; the run is recorded before it is returned.
    pub error: Option<String>,
}

/// Runs Plugin `name` with trigger `manual`. Without `dry_run` the run and its part (source
/// `Plugin/<name>`, generation previous + 1) are stored; with it nothing is written.
pub async fn run_manual(
    store: Option<&Store>,
    router: &Router,
    name: &str,
    now: Timestamp,
) -> Result<ManualRun, String> {
    let (_, spec) = router
        .specs(pick::plugin)
        .find(|(r, _)| r.name() == name)
        .ok_or_else(|| format!("Plugin {name:?} not found in startup config"))?;
    let source = format!("Plugin/{name}");
    let previous = match store {
        Some(s) => s.max_generation(&source).map_err(|e| e.to_string())?,
        None => 0,
    };
    let run_id = match store {
        Some(s) => Some(
            s.start_plugin_run(name, "manual", "", now)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut request = PluginRequest::new(
        name,
        Trigger {
            trigger_type: "manual",
            topic: String::new(),
        },
        now,
        &[],
    );
    request.spec.startup_config_hash =
        gojson::sha256_hex(&gojson::to_vec(router).map_err(|e| e.to_string())?);
    request.spec.previous_dynamic_generation = previous;
    let outcome = runner::run(name, spec, request.to_stdin()).await;

    let mut run = ManualRun {
        plugin: name.into(),
        source: source.clone(),
        dry_run: store.is_none(),
        stored: false,
        part: None,
        action_plans: vec![],
        events: 0,
        error: outcome.error.clone(),
        outcome,
    };
    if run.error.is_none() {
        match decode(name, &run.outcome.stdout).and_then(validate) {
            Ok(valid) => {
                let part = build(source, previous + 1, &valid, now);
                run.action_plans = valid.action_plans.clone();
                run.events = valid.events;
                if let Some(s) = store {
                    match s
                        .list_parts()
                        .map_err(|e| e.to_string())
                        .and_then(|stored| {
                            crate::controller::check_merge(router, &stored, &part, now)
                        })
                        .and_then(|_| s.upsert_part(&part).map_err(|e| e.to_string()))
                    {
                        Ok(()) => run.stored = true,
                        Err(e) => run.error = Some(e),
                    }
                }
                run.part = Some(part);
            }
            Err(e) => run.error = Some(e),
        }
    }
    if let (Some(s), Some(id)) = (store, run_id) {
        let result = PluginRunResult {
            succeeded: run.error.is_none(),
            exit_code: run.outcome.exit_code,
            stdout_digest: &run.outcome.stdout_digest,
            stderr: &run.outcome.stderr,
            error: run.error.as_deref().unwrap_or(""),
        };
        s.finish_plugin_run(id, s.now(), &result)
            .map_err(|e| e.to_string())?;
    }
    Ok(run)
}

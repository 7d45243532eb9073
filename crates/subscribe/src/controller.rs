//! The EventSubscription controller: one pass matches stored events, runs the plugin per batch
//! and stores the resulting part.

use std::collections::HashMap;

use routerd_model::kinds::{EventSubscriptionSpec, PluginSpec};
use routerd_model::resource::pick;
use routerd_model::{DynamicConfigPart, Event, Resource, Router, Timestamp};
use routerd_state::events::EventQuery;
use routerd_state::runs::RunOutcome;
use routerd_state::{PluginRunResult, RunState, Store};

use crate::part::{build, stamp_provenance, subscription_source};
use crate::protocol::{decode, validate, PluginRequest, Trigger};
use crate::runner;
use crate::schedule::{event_cost, Schedule, Window, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};

/// A failed batch is retried until its events have this many attempts.
pub const MAX_ATTEMPTS: i64 = 3;
pub const TRIGGER_TYPE: &str = "federation-subscription";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing to do.
    Idle,
    /// Cannot run (its Plugin is missing).
    Pending,
    /// Events wait for their batch window.
    Waiting,
    /// The last batch produced a part.
    Applied,
    /// The last batch failed.
    Degraded,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionReport {
    pub name: String,
    pub phase: Phase,
    pub matched: usize,
    pub message: String,
    /// Sources of the parts stored in this pass.
    pub parts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    pub subscriptions: Vec<SubscriptionReport>,
    /// The earliest open batch window deadline, for the daemon to wake up at.
    pub next_due: Option<Timestamp>,
}

impl PassReport {
    /// Every part stored in this pass.
    pub fn stored_parts(&self) -> impl Iterator<Item = &str> {
        self.subscriptions
            .iter()
            .flat_map(|s| s.parts.iter().map(String::as_str))
    }
}

/// Holds the open batch windows between passes.
#[derive(Debug, Default)]
pub struct Controller {
    schedules: HashMap<String, Schedule>,
    flush_windows: bool,
}

/// `match`: types, subject prefixes, payload and source nodes; exact, case-sensitive.
pub fn matches(spec: &EventSubscriptionSpec, e: &Event) -> bool {
    let m = &spec.match_;
    m.types.contains(&e.event_type)
        && (m.subject_prefixes.is_empty()
            || m.subject_prefixes
                .iter()
                .any(|p| e.subject.starts_with(p.as_str())))
        && m.payload
            .iter()
            .all(|(k, v)| e.payload.get(k).map(String::as_str).unwrap_or("") == v)
        && (m.source_nodes.is_empty() || m.source_nodes.contains(&e.source_node))
}

/// Never after success, not after [`MAX_ATTEMPTS`] failures; pending rows (a crash) retry.
pub fn eligible(state: Option<&RunState>) -> bool {
    match state {
        None => true,
        Some(s) if s.succeeded => false,
        Some(s) if s.failed => s.attempts < MAX_ATTEMPTS,
        Some(_) => true,
    }
}

impl Controller {
    /// A controller for the daemon: batch windows wait across passes.
    pub fn new() -> Self {
        Controller::default()
    }

    /// A controller for `serve --once`: one pass, so windows are not waited for.
    pub fn once() -> Self {
        Controller {
            flush_windows: true,
            ..Default::default()
        }
    }

    /// One pass over every EventSubscription, in config order. A failing subscription is
    /// reported and the next one still runs; the pass itself never fails.
    pub async fn pass(&mut self, store: &Store, router: &Router, now: Timestamp) -> PassReport {
        let mut report = PassReport::default();
        for (res, spec) in router.specs(pick::event_subscription) {
            let sub = self.reconcile(store, router, res.name(), spec, now).await;
            report.subscriptions.push(sub);
        }
        // Windows of subscriptions removed from the config are dropped.
        let names: Vec<String> = router
            .specs(pick::event_subscription)
            .map(|(r, _)| r.name().to_string())
            .collect();
        self.schedules.retain(|name, _| names.contains(name));
        report.next_due = router
            .specs(pick::event_subscription)
            .filter_map(|(r, s)| {
                let w = Window::parse(&s.trigger.batch_window, &s.trigger.debounce)?;
                self.schedules.get(r.name())?.deadline(w)
            })
            .min();
        report
    }

    async fn reconcile(
        &mut self,
        store: &Store,
        router: &Router,
        name: &str,
        spec: &EventSubscriptionSpec,
        now: Timestamp,
    ) -> SubscriptionReport {
        let mut report = SubscriptionReport {
            name: name.into(),
            phase: Phase::Idle,
            matched: 0,
            message: String::new(),
            parts: vec![],
        };
        let key = format!("EventSubscription/{name}");
        let plugin_name = spec.trigger.plugin_ref.trim();
        let Some((plugin_res, plugin)) = router
            .specs(pick::plugin)
            .find(|(r, _)| r.name() == plugin_name)
        else {
            report.phase = Phase::Pending;
            report.message = format!("Plugin {plugin_name:?} not found");
            return report;
        };
        let listed = store
            .list_events(&EventQuery {
                group: Some(spec.group_ref.trim()),
                include_expired: false,
                now,
                recorded_since: None,
            })
            .and_then(|events| Ok((events, store.run_states(&key)?)));
        let (events, states) = match listed {
            Ok(v) => v,
            Err(e) => {
                report.phase = Phase::Degraded;
                report.message = format!("list federation events for {name:?}: {e}");
                return report;
            }
        };
        let mut candidates: Vec<Event> = events
            .into_iter()
            .map(|s| s.event)
            .filter(|e| matches(spec, e) && eligible(states.get(&e.id)))
            .collect();
        candidates.sort_by(|a, b| (a.observed_at, &a.id).cmp(&(b.observed_at, &b.id)));
        report.matched = candidates.len();
        if candidates.is_empty() {
            self.schedules.remove(name);
            return report;
        }

        if let Some(window) = Window::parse(&spec.trigger.batch_window, &spec.trigger.debounce) {
            if !self.flush_windows {
                let schedule = self.schedules.entry(name.to_string()).or_default();
                schedule.add(&candidates, now);
                if !schedule.is_due(window, now) {
                    report.phase = Phase::Waiting;
                    report.message = format!(
                        "Waiting for trigger window ({} event(s) matched)",
                        schedule.len()
                    );
                    return report;
                }
                let schedule = self.schedules.remove(name).unwrap_or_default();
                candidates.retain(|e| schedule.contains(&e.id));
            }
        }

        // Loaded once and kept current, so a pass of many batches does not re-read them all.
        let mut stored = match store.list_parts() {
            Ok(p) => p,
            Err(e) => {
                report.phase = Phase::Degraded;
                report.message = format!("list dynamic parts: {e}");
                return report;
            }
        };
        for batch in batches(candidates) {
            match run_batch(
                store,
                router,
                &mut stored,
                name,
                plugin_res,
                plugin,
                &batch,
                now,
            )
            .await
            {
                Ok(source) => {
                    tracing::info!(subscription = name, source = %source, events = batch.len(), "dynamic part stored");
                    report.phase = Phase::Applied;
                    report.parts.push(source);
                }
                Err(error) => {
                    tracing::warn!(subscription = name, events = batch.len(), %error, "subscription batch failed");
                    report.phase = Phase::Degraded;
                    report.message = error;
                }
            }
        }
        report
    }
}

/// Splits events into batches of at most 1024 events and 4 MiB, in order.
fn batches(events: Vec<Event>) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = vec![];
    let mut bytes = 0;
    for e in events {
        let cost = event_cost(&e);
        match out.last_mut() {
            Some(b) if b.len() < MAX_BATCH_EVENTS && bytes + cost <= MAX_BATCH_BYTES => {
                bytes += cost;
                b.push(e);
            }
            _ => {
                bytes = cost;
                out.push(vec![e]);
            }
        }
    }
    out
}

/// Runs one batch end to end; returns the stored part's source or the error recorded for it.
#[allow(clippy::too_many_arguments)]
async fn run_batch(
    store: &Store,
    router: &Router,
    stored: &mut Vec<DynamicConfigPart>,
    subscription: &str,
    plugin_res: &Resource,
    plugin: &PluginSpec,
    batch: &[Event],
    now: Timestamp,
) -> Result<String, String> {
    let key = format!("EventSubscription/{subscription}");
    let plugin_name = plugin_res.name();
    let ids: Vec<&str> = batch.iter().map(|e| e.id.as_str()).collect();
    let pairs: Vec<(&str, &str)> = batch
        .iter()
        .map(|e| (e.id.as_str(), e.group.as_str()))
        .collect();
    store
        .start_runs(&key, plugin_name, &pairs, now)
        .map_err(|e| e.to_string())?;
    let run_id = store
        .start_plugin_run(plugin_name, TRIGGER_TYPE, subscription, now)
        .map_err(|e| e.to_string())?;

    let trigger = Trigger {
        trigger_type: TRIGGER_TYPE,
        topic: format!("routerd.federation.subscription/{subscription}"),
    };
    let request = PluginRequest::new(plugin_name, trigger, now, batch);
    let outcome = runner::run(plugin_name, plugin, request.to_stdin()).await;

    let result = match &outcome.error {
        Some(e) => Err(e.clone()),
        None => decode(plugin_name, &outcome.stdout)
            .and_then(validate)
            .and_then(|valid| {
                let mut part = build(subscription_source(subscription, batch), 1, &valid, now);
                stamp_provenance(&mut part, subscription, batch);
                check_merge(router, stored, &part, now)?;
                store.upsert_part(&part).map_err(|e| e.to_string())?;
                let source = part.source.clone();
                stored.retain(|p| !(p.source == part.source && p.generation == part.generation));
                stored.insert(0, part);
                Ok(source)
            }),
    };

    let run_result = PluginRunResult {
        succeeded: result.is_ok(),
        exit_code: outcome.exit_code,
        stdout_digest: &outcome.stdout_digest,
        stderr: &outcome.stderr,
        error: result.as_ref().err().map(String::as_str).unwrap_or(""),
    };
    let completed = store.now();
    let finished = match &result {
        Ok(source) => store.finish_runs(
            &key,
            &ids,
            &RunOutcome::Succeeded {
                dynamic_source: source,
                dynamic_generation: 1,
            },
            completed,
        ),
        Err(error) => store.finish_runs(&key, &ids, &RunOutcome::Failed { error }, completed),
    };
    finished
        .and_then(|_| store.finish_plugin_run(run_id, completed, &run_result))
        .map_err(|e| e.to_string())?;
    result
}

/// Refuses a part that would make the effective config fail to merge or validate, unless it
/// already fails without it. Go stores such parts and then every render fails until they expire.
/// `stored` are the parts in the store, newest first.
pub fn check_merge(
    router: &Router,
    stored: &[DynamicConfigPart],
    part: &DynamicConfigPart,
    now: Timestamp,
) -> Result<(), String> {
    let without: Vec<&DynamicConfigPart> = stored
        .iter()
        .filter(|p| !(p.source == part.source && p.generation == part.generation))
        .collect();
    let mut with = without.clone();
    with.push(part);
    // Newest first, as the store orders them.
    with.sort_by(|a, b| {
        (b.observed_at, b.generation, b.id).cmp(&(a.observed_at, a.generation, a.id))
    });
    match routerd_dynamic::merge(router, with, now) {
        Ok(_) => Ok(()),
        Err(e) if routerd_dynamic::merge(router, without, now).is_ok() => {
            Err(format!("dynamic part rejected: {e}"))
        }
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> EventSubscriptionSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn matching_is_exact_and_all_of() {
        let s = spec("{match: {types: [t], subjectPrefixes: [10.88.60.], sourceNodes: [a], payload: {k: v, gone: ''}}}");
        let mut e = Event {
            event_type: "t".into(),
            subject: "10.88.60.9/32".into(),
            source_node: "a".into(),
            payload: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        assert!(matches(&s, &e));
        e.source_node = "A".into();
        assert!(!matches(&s, &e));
        e.source_node = "a".into();
        e.subject = "10.88.61.9/32".into();
        assert!(!matches(&s, &e));
        e.subject = "10.88.60.9/32".into();
        e.event_type = "T".into();
        assert!(!matches(&s, &e));
    }

    #[test]
    fn eligibility_follows_the_run_table() {
        let st = |succeeded, failed, attempts| RunState {
            succeeded,
            failed,
            attempts,
        };
        assert!(eligible(None));
        assert!(!eligible(Some(&st(true, false, 1))));
        assert!(eligible(Some(&st(false, true, 2))));
        assert!(!eligible(Some(&st(false, true, 3))));
        assert!(eligible(Some(&st(false, false, 7))));
    }

    #[test]
    fn batches_respect_the_event_limit() {
        let events: Vec<Event> = (0..2500)
            .map(|i| Event {
                id: format!("e{i}"),
                ..Default::default()
            })
            .collect();
        let sizes: Vec<usize> = batches(events).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1024, 1024, 452]);
    }
}

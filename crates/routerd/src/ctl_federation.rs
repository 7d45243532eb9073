//! `routerctl federation …`: events and subscription runs.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{bail, Context};
use serde::Serialize;

use routerd_model::resource::pick;
use routerd_model::{Event, GoDuration, Timestamp};
use routerd_state::{EventQuery, StoredEvent, SubscriptionRun};

use crate::cli::{
    DeliveriesArgs, DeliveriesCommand, EmitArgs, EventCommand, FederationCommand, ListArgs,
    PruneArgs, RunsArgs, SubscriptionCommand, SummaryArgs,
};
use crate::output::{self, cell, table, Format};

pub fn run(cmd: FederationCommand) -> anyhow::Result<()> {
    match cmd {
        FederationCommand::Event(EventCommand::Emit(a)) => emit(&a),
        FederationCommand::Event(EventCommand::List(a)) => list(&a),
        FederationCommand::Event(EventCommand::Prune(a)) => prune(&a),
        FederationCommand::Subscription(SubscriptionCommand::Runs(a)) => runs(&a),
        FederationCommand::Event(EventCommand::Deliveries(a)) => deliveries(&a),
        FederationCommand::Deliveries(DeliveriesCommand::Summary(a)) => summary(&a),
    }
}

const EVENT_FORMATS: &[Format] = &[Format::Table, Format::Json, Format::Yaml];

/// Splits `k=v` at the first `=`; the key is trimmed and must not be empty.
pub fn parse_payload(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), v.to_string());
            }
            _ => bail!("payload must be key=value, got {item:?}"),
        }
    }
    Ok(out)
}

/// `evt-<unix nanoseconds>-<16 hex digits>`, as Go generates ids.
fn generate_id(now: Timestamp) -> String {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    match random {
        Ok(()) => format!(
            "evt-{}-{}",
            now.unix_nanos(),
            routerd_model::gojson::hex(&bytes)
        ),
        Err(_) => format!("evt-{}", now.unix_nanos()),
    }
}

fn emit(a: &EmitArgs) -> anyhow::Result<()> {
    if a.group.trim().is_empty() {
        bail!("--group is required");
    }
    if a.event_type.trim().is_empty() {
        bail!("--type is required");
    }
    let payload = parse_payload(&a.payload)?;
    let ttl = GoDuration::parse(a.ttl.trim())
        .map_err(|e| anyhow::anyhow!("invalid value {:?} for flag -ttl: {e}", a.ttl))?;
    let format = Format::parse(&a.output, EVENT_FORMATS)?;
    let now = crate::clock().now();
    let observed = match a.observed_at.trim() {
        "" => now,
        t => Timestamp::parse_rfc3339(t)
            .map_err(|e| anyhow::anyhow!("invalid --observed-at: {e}"))?,
    };
    let id = if a.id.trim().is_empty() {
        generate_id(now)
    } else {
        a.id.trim().to_string()
    };
    let mut event = Event {
        id,
        group: a.group.clone(),
        source_node: a.source_node.clone(),
        event_type: a.event_type.clone(),
        subject: a.subject.clone(),
        dedupe_key: a.dedupe_key.clone(),
        payload,
        observed_at: observed,
        expires_at: if ttl.is_positive() {
            observed.add(ttl)
        } else {
            Timestamp::ZERO
        },
    };
    event.normalize()?;
    let store = crate::open_store(&a.state.state_file)?;
    // The no-feedback guard: never report an address this node captures itself.
    let captured = routerd_dynamic::capture::captured_addresses(&store.list_parts()?, now);
    routerd_dynamic::capture::check_self_capture(&captured, &event).map_err(anyhow::Error::msg)?;
    store.record_event(&event)?;
    let stored = store
        .get_event(&event.id)?
        .context("the event vanished after it was recorded")?;
    print!("{}", render_events(&[stored], format, false));
    Ok(())
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, EVENT_FORMATS)?;
    let store = crate::open_store(&a.state.state_file)?;
    let group = a.group.trim();
    let events = store.list_events(&EventQuery {
        group: (!group.is_empty()).then_some(group),
        include_expired: a.include_expired,
        now: store.now(),
        recorded_since: None,
    })?;
    print!("{}", render_events(&events, format, true));
    Ok(())
}

/// Go field names: routerd's event rows have no JSON tags.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventView<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    group: &'a str,
    source_node: &'a str,
    #[serde(rename = "Type")]
    event_type: &'a str,
    subject: &'a str,
    dedupe_key: &'a str,
    payload: Option<&'a BTreeMap<String, String>>,
    observed_at: Timestamp,
    expires_at: Timestamp,
    recorded_at: Timestamp,
}

fn render_events(events: &[StoredEvent], format: Format, as_list: bool) -> String {
    let views: Vec<EventView<'_>> = events
        .iter()
        .map(|s| EventView {
            id: &s.event.id,
            group: &s.event.group,
            source_node: &s.event.source_node,
            event_type: &s.event.event_type,
            subject: &s.event.subject,
            dedupe_key: &s.event.dedupe_key,
            payload: (!s.event.payload.is_empty()).then_some(&s.event.payload),
            observed_at: s.event.observed_at,
            expires_at: s.event.expires_at,
            recorded_at: s.recorded_at,
        })
        .collect();
    match format {
        Format::Json if as_list => output::json(&(!views.is_empty()).then_some(&views)),
        Format::Json => output::json(&views[0]),
        Format::Yaml if as_list => output::yaml_go_fields(&views),
        Format::Yaml => {
            let all = output::yaml_go_fields(&views);
            // One object, not a list of one.
            serde_yaml::from_str::<Vec<serde_yaml::Value>>(&all)
                .map(|v| output::yaml(&v[0]))
                .unwrap_or(all)
        }
        _ => {
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v.id.to_string(),
                        v.group.to_string(),
                        cell(v.source_node),
                        v.event_type.to_string(),
                        cell(v.subject),
                        v.observed_at.display_cell(),
                        v.expires_at.display_cell(),
                    ]
                })
                .collect();
            table(
                &[
                    "ID", "GROUP", "SOURCE", "TYPE", "SUBJECT", "OBSERVED", "EXPIRES",
                ],
                &rows,
            )
        }
    }
}

fn prune(a: &PruneArgs) -> anyhow::Result<()> {
    let router = crate::load_config(&a.config.config)?;
    let max_age_override = match &a.max_age {
        Some(s) => Some(
            GoDuration::parse(s.trim()).map_err(|e| anyhow::anyhow!("invalid --max-age: {e}"))?,
        ),
        None => None,
    };
    if a.max_events.is_some_and(|n| n < 0) {
        bail!("--max-events must be >= 0");
    }
    let groups: Vec<_> = router
        .specs(pick::event_group)
        .filter(|(r, _)| a.group.trim().is_empty() || r.name() == a.group.trim())
        .collect();
    if groups.is_empty() {
        bail!(
            "EventGroup {:?} not found in {}",
            a.group.trim(),
            a.config.config.display()
        );
    }
    let store = crate::open_store(&a.state.state_file)?;
    let now = store.now();
    for (res, spec) in groups {
        // The config was validated, so a set maxAge parses.
        let max_age = max_age_override.or_else(|| {
            routerd_model::duration::parse_optional(&spec.retention.max_age)
                .ok()
                .flatten()
        });
        let max_events = a.max_events.unwrap_or(spec.retention.max_events);
        let ids = store.prune_events(res.name(), max_age, max_events, now, a.dry_run)?;
        let verb = if a.dry_run { "would prune" } else { "pruned" };
        println!("group {}: {verb} {} event(s)", res.name(), ids.len());
        for id in ids {
            println!("  {id}");
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunView<'a> {
    #[serde(rename = "ID")]
    id: i64,
    subscription: &'a str,
    #[serde(rename = "EventID")]
    event_id: &'a str,
    event_group: &'a str,
    plugin: &'a str,
    status: &'a str,
    attempts: i64,
    started_at: &'a str,
    completed_at: &'a str,
    dynamic_source: &'a str,
    dynamic_generation: i64,
    error: &'a str,
}

impl<'a> From<&'a SubscriptionRun> for RunView<'a> {
    fn from(r: &'a SubscriptionRun) -> Self {
        RunView {
            id: r.id,
            subscription: &r.subscription,
            event_id: &r.event_id,
            event_group: &r.event_group,
            plugin: &r.plugin,
            status: &r.status,
            attempts: r.attempts,
            started_at: &r.started_at,
            completed_at: &r.completed_at,
            dynamic_source: &r.dynamic_source,
            dynamic_generation: r.dynamic_generation,
            error: &r.error,
        }
    }
}

/// Cuts at 57 bytes (on a character boundary) plus `...` when longer than 60.
fn shorten(s: &str) -> String {
    if s.len() <= 60 {
        return s.to_string();
    }
    let mut end = 57;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn runs(a: &RunsArgs) -> anyhow::Result<()> {
    let key = a.subscription.trim();
    if key.is_empty() {
        bail!("--subscription is required");
    }
    let format = Format::parse(&a.output, EVENT_FORMATS)?;
    let store = crate::open_store(&a.state.state_file)?;
    let runs = store.list_runs(key)?;
    let views: Vec<RunView<'_>> = runs.iter().map(RunView::from).collect();
    let text = match format {
        Format::Json => output::json(&(!views.is_empty()).then_some(&views)),
        Format::Yaml => output::yaml_go_fields(&views),
        _ => {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.subscription.clone(),
                        r.event_id.clone(),
                        r.event_group.clone(),
                        r.plugin.clone(),
                        r.status.clone(),
                        r.attempts.to_string(),
                        cell(&r.started_at),
                        cell(&r.completed_at),
                        cell(&shorten(&r.error)),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "SUBSCRIPTION",
                    "EVENT_ID",
                    "GROUP",
                    "PLUGIN",
                    "STATUS",
                    "ATTEMPTS",
                    "STARTED",
                    "COMPLETED",
                    "ERROR",
                ],
                &rows,
            )
        }
    };
    print!("{text}");
    Ok(())
}

fn opt(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeliveryView<'a> {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "EventID")]
    event_id: &'a str,
    peer: &'a str,
    status: &'a str,
    attempts: i64,
    last_attempt_at: Timestamp,
    last_error: &'a str,
    delivered_at: Timestamp,
    event_expires_at: Timestamp,
}

fn deliveries(a: &DeliveriesArgs) -> anyhow::Result<()> {
    let status = opt(&a.status);
    if let Some(s) = status {
        if !matches!(s, "pending" | "delivered" | "failed") {
            bail!("invalid --status {s:?}: must be one of pending, delivered, failed");
        }
    }
    let format = Format::parse(&a.output, EVENT_FORMATS)?;
    let store = crate::open_store(&a.state.state_file)?;
    let rows = store.list_deliveries(&routerd_state::DeliveryQuery {
        group: opt(&a.group),
        event_id: opt(&a.event_id),
        peer: opt(&a.peer),
        status,
    })?;
    let views: Vec<DeliveryView<'_>> = rows
        .iter()
        .map(|d| DeliveryView {
            id: 0,
            event_id: &d.event_id,
            peer: &d.peer,
            status: &d.status,
            attempts: d.attempts,
            last_attempt_at: d.last_attempt_at,
            last_error: &d.last_error,
            delivered_at: d.delivered_at,
            event_expires_at: d.event_expires_at,
        })
        .collect();
    let text = match format {
        Format::Json => output::json(&(!views.is_empty()).then_some(&views)),
        Format::Yaml => output::yaml_go_fields(&views),
        _ => table(
            &[
                "EVENT_ID",
                "PEER",
                "STATUS",
                "ATTEMPTS",
                "LAST_ATTEMPT",
                "LAST_ERROR",
                "DELIVERED",
            ],
            &views
                .iter()
                .map(|d| {
                    vec![
                        d.event_id.to_string(),
                        d.peer.to_string(),
                        d.status.to_string(),
                        d.attempts.to_string(),
                        d.last_attempt_at.display_cell(),
                        cell(d.last_error),
                        d.delivered_at.display_cell(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    };
    print!("{text}");
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryView<'a> {
    group: &'a str,
    peer: &'a str,
    events: i64,
    delivered: i64,
    #[serde(rename = "staleTTL")]
    stale_ttl: i64,
    failed: i64,
    pending: i64,
    max_lag_seconds: i64,
    min_expires_in_seconds: i64,
}

/// Go duration text for whole seconds, `-` for zero.
fn seconds_cell(s: i64) -> String {
    if s == 0 {
        "-".into()
    } else {
        GoDuration::from_secs(s).to_string()
    }
}

fn summary(a: &SummaryArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, EVENT_FORMATS)?;
    let store = crate::open_store(&a.state.state_file)?;
    let rows = store.delivery_summary(
        opt(&a.group),
        opt(&a.peer),
        opt(&a.event_type),
        a.include_expired,
        store.now(),
    )?;
    let views: Vec<SummaryView<'_>> = rows
        .iter()
        .map(|r| SummaryView {
            group: &r.group,
            peer: &r.peer,
            events: r.events,
            delivered: r.delivered,
            stale_ttl: r.stale_ttl,
            failed: r.failed,
            pending: r.pending,
            max_lag_seconds: r.max_lag_seconds,
            min_expires_in_seconds: r.min_expires_in_seconds,
        })
        .collect();
    let text = match format {
        Format::Json => output::json(&views),
        Format::Yaml => output::yaml(&views),
        _ => table(
            &[
                "GROUP",
                "PEER",
                "EVENTS",
                "DELIVERED",
                "STALE_TTL",
                "FAILED",
                "PENDING",
                "MAX_LAG",
                "MIN_EXPIRES_IN",
            ],
            &views
                .iter()
                .map(|v| {
                    vec![
                        v.group.to_string(),
                        v.peer.to_string(),
                        v.events.to_string(),
                        v.delivered.to_string(),
                        v.stale_ttl.to_string(),
                        v.failed.to_string(),
                        v.pending.to_string(),
                        seconds_cell(v.max_lag_seconds),
                        seconds_cell(v.min_expires_in_seconds),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_splits_at_the_first_equals_and_trims_the_key() {
        let p = parse_payload(&[" a =x=y".into(), "b=".into(), "a=z".into()]).unwrap();
        assert_eq!(p["a"], "z");
        assert_eq!(p["b"], "");
        assert_eq!(
            parse_payload(&["novalue".into()]).unwrap_err().to_string(),
            "payload must be key=value, got \"novalue\""
        );
        assert!(parse_payload(&[" =v".into()]).is_err());
    }

    #[test]
    fn generated_ids_have_gos_shape() {
        let id = generate_id(Timestamp::from_unix(1_780_142_400));
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts[0], "evt");
        assert_eq!(parts[1], "1780142400000000000");
        assert_eq!(parts[2].len(), 16);
    }

    #[test]
    fn errors_are_shortened_like_go() {
        assert_eq!(shorten("short"), "short");
        let long = "x".repeat(61);
        assert_eq!(shorten(&long).len(), 60);
        assert!(shorten(&long).ends_with("..."));
    }
}

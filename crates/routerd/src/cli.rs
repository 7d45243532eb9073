//! Command-line surface. `routerd` holds the daemon verbs, `routerctl` the operator verbs; both
//! accept Go's `-flag` spelling as well as `--flag`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const DEFAULT_CONFIG: &str = "/etc/routerd/router.yaml";
pub const DEFAULT_STATE: &str = "/var/lib/routerd/routerd.db";

#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// Router config (YAML).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct StateArg {
    /// SQLite state database, shared by routerd and routerctl.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_STATE)]
    pub state_file: PathBuf,
}

#[derive(Parser, Debug)]
#[command(
    name = "routerd",
    about = "routerd-edge daemon: federates observed facts between routers and turns them into config",
    after_help = "The same binary runs as `routerctl` (operator commands) when started under that name.\nrouterd --version prints the bare version."
)]
pub struct RouterdCli {
    #[command(subcommand)]
    pub command: RouterdCommand,
}

#[derive(Subcommand, Debug)]
pub enum RouterdCommand {
    /// Run the pipeline: federation, observers, the subscription controller every 5 s and the
    /// apply stage (dry-run unless --live). SIGHUP reloads the config.
    Serve(ServeArgs),
    /// Validate a config file: list every problem with its resource id.
    #[command(alias = "check")]
    Validate(ConfigArg),
    /// One pass over the effective config's RemoteAddressClaims: print what it would do to the
    /// host (the default), or do it with --live.
    Apply(ApplyArgs),
    /// Run the receiver flow on the embedded example config with a temporary state file.
    Demo(DemoArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ApplyModeArgs {
    /// Change the host: install delivery routes, WireGuard allowed IPs and proxy neighbour
    /// entries, and withdraw what routerd installed for claims that are gone. Without it
    /// nothing on the host changes.
    #[arg(long)]
    pub live: bool,
    /// How long an installed action outlives its claim before it is withdrawn (Go duration).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub withdraw_grace: String,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Dry-run (the default) prints each claim and the equivalent ip/wg commands, marking those already in place, and exits 0.\nWith --live the exit code is 1 when a claim is in phase Error or a withdrawal failed."
)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub state: StateArg,
    #[command(flatten)]
    pub mode: ApplyModeArgs,
    /// Accepted for Go compatibility: the default already is a dry run.
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted for Go compatibility: apply always runs one pass.
    #[arg(long)]
    pub once: bool,
    /// text or json.
    #[arg(short = 'o', long = "output", default_value = "text")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub state: StateArg,
    /// Run one pass of every stage that needs no listener, then exit (tests, cron).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub apply: ApplyModeArgs,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The event-to-remote-claim plugin (default: next to this binary).
    #[arg(long, value_name = "FILE")]
    pub plugin: Option<PathBuf>,
    /// Keep the temporary directory and print its path.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Parser, Debug)]
#[command(
    name = "routerctl",
    about = "routerd-edge operator commands: inspect and drive the state database"
)]
pub struct RouterctlCli {
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Federation events and subscription runs.
    #[command(alias = "fed", subcommand)]
    Federation(FederationCommand),
    /// Dynamic config parts and the effective config.
    #[command(subcommand)]
    Dynamic(DynamicCommand),
    /// Plugins of the startup config.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// RemoteAddressClaims as the last apply pass left them, and withdrawals under way.
    Claims(ClaimsArgs),
}

#[derive(Args, Debug)]
pub struct ClaimsArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// table, json or yaml.
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Subcommand, Debug)]
pub enum FederationCommand {
    /// Record, list and prune events in the local store.
    #[command(subcommand)]
    Event(EventCommand),
    /// EventSubscription bookkeeping.
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Delivery aggregates per group and peer.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
}

#[derive(Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// Per (group, peer): events, delivered, stale TTL, failed, pending, lag, nearest expiry.
    Summary(SummaryArgs),
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub state: StateArg,
    #[arg(long, default_value = "")]
    pub group: String,
    #[arg(long, default_value = "")]
    pub peer: String,
    #[arg(long = "type", default_value = "")]
    pub event_type: String,
    #[arg(long)]
    pub include_expired: bool,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Only deliveries of events of this group.
    #[arg(long, default_value = "")]
    pub group: String,
    #[arg(long, default_value = "")]
    pub event_id: String,
    /// Peer nodeName.
    #[arg(long, default_value = "")]
    pub peer: String,
    /// pending, delivered or failed.
    #[arg(long, default_value = "")]
    pub status: String,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Subcommand, Debug)]
pub enum EventCommand {
    /// Record one event in the local store (delivery is the daemon's job).
    #[command(
        after_help = "Example:\n  routerctl federation event emit --group cloudedge --type routerd.client.ipv4.observed \\\n    --subject 10.88.60.9/32 --source-node onprem-router --payload address=10.88.60.9/32 --ttl 30m"
    )]
    Emit(EmitArgs),
    /// List stored events, oldest first.
    List(ListArgs),
    /// Apply the EventGroup retention rules now (an addition over Go routerd).
    Prune(PruneArgs),
    /// The outbox: one row per (event, peer) with status, attempts and last error.
    Deliveries(DeliveriesArgs),
}

#[derive(Args, Debug)]
pub struct EmitArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// EventGroup (required).
    #[arg(long, default_value = "")]
    pub group: String,
    /// Event type, e.g. routerd.client.ipv4.observed (required).
    #[arg(long = "type", default_value = "")]
    pub event_type: String,
    #[arg(long, default_value = "")]
    pub subject: String,
    /// The originating node; only events whose source is the group's nodeName are pushed.
    #[arg(long, default_value = "")]
    pub source_node: String,
    /// Idempotency key (default: generated).
    #[arg(long, default_value = "")]
    pub id: String,
    /// Defaults to the id.
    #[arg(long, default_value = "")]
    pub dedupe_key: String,
    /// key=value, repeatable; the value may contain '='.
    #[arg(long = "payload", value_name = "KEY=VALUE")]
    pub payload: Vec<String>,
    /// Go duration (30m, 1h); 0 or negative: never expires.
    #[arg(long, default_value = "0s")]
    pub ttl: String,
    /// RFC 3339 (default: now).
    #[arg(long, default_value = "")]
    pub observed_at: String,
    /// table, json or yaml.
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Only this group.
    #[arg(long, default_value = "")]
    pub group: String,
    /// Show events whose TTL has passed.
    #[arg(long)]
    pub include_expired: bool,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub state: StateArg,
    /// Only this EventGroup (default: every group in the config).
    #[arg(long, default_value = "")]
    pub group: String,
    /// Override the group's retention.maxAge (Go duration).
    #[arg(long)]
    pub max_age: Option<String>,
    /// Override the group's retention.maxEvents.
    #[arg(long)]
    pub max_events: Option<i64>,
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug)]
pub enum SubscriptionCommand {
    /// Runs of one subscription: status, attempts and error per event.
    Runs(RunsArgs),
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// EventSubscription/<name> (required).
    #[arg(long, default_value = "")]
    pub subscription: String,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Subcommand, Debug)]
pub enum DynamicCommand {
    /// Stored parts, newest first, with their computed status.
    List(DynListArgs),
    /// Every generation of one part source.
    Describe(DescribeArgs),
    /// Print the effective config: startup resources plus active dynamic parts.
    Render(RenderArgs),
    /// What the dynamic parts add to, hide from and supersede in the startup config.
    Diff(RenderArgs),
    /// Remove every generation of one part by hand (an addition over Go routerd).
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The exact part source, as `routerctl dynamic list` shows it.
    pub source: String,
    #[command(flatten)]
    pub state: StateArg,
}

#[derive(Args, Debug)]
pub struct DynListArgs {
    #[command(flatten)]
    pub state: StateArg,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The exact part source, e.g. EventSubscription/cloud-claims/7b409f932d2c88e9.
    pub source: String,
    #[command(flatten)]
    pub state: StateArg,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub state: StateArg,
    /// render: yaml (default) or json; diff: text (default) or json.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Plugin resources of the startup config, in file order.
    List(PluginListArgs),
    /// Run a plugin now with the manual trigger and store its part (source Plugin/<name>).
    Run(PluginRunArgs),
}

#[derive(Args, Debug)]
pub struct PluginListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct PluginRunArgs {
    /// Plugin resource name.
    pub name: String,
    /// Run it and show the result; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub state: StateArg,
    #[arg(short = 'o', long = "output", default_value = "table")]
    pub output: String,
}

/// Long flag names both CLIs know, for turning Go's `-flag` into `--flag`.
const LONG_FLAGS: &[&str] = &[
    "config",
    "state-file",
    "group",
    "type",
    "subject",
    "source-node",
    "id",
    "dedupe-key",
    "payload",
    "ttl",
    "observed-at",
    "output",
    "include-expired",
    "max-age",
    "max-events",
    "dry-run",
    "subscription",
    "once",
    "plugin",
    "keep",
    "help",
    "version",
];

/// Go's flag package treats `-name` like `--name`; clap wants the double dash.
pub fn normalize_go_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s.starts_with('-') && !s.starts_with("--") && s.len() > 2 => {
                let name = s[1..].split('=').next().unwrap_or("");
                if LONG_FLAGS.contains(&name) {
                    format!("-{s}").into()
                } else {
                    a
                }
            }
            _ => a,
        })
        .collect()
}

//! Helpers for tests that drive the real binaries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod topology;
#[allow(unused_imports)]
pub use topology::Topology;

pub const EXAMPLE: &str = include_str!("../../../../examples/receiver-cloud.yaml");
pub const PACKAGED_PLUGIN: &str =
    "/usr/libexec/routerd/plugins/event-to-remote-claim/bin/event-to-remote-claim";

pub fn routerd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_routerd"))
}

pub fn routerctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_routerctl"))
}

/// The example plugin. `cargo build` leaves it next to routerd; on a clean checkout where only
/// `cargo test` ran, it is built once into its own target directory.
pub fn example_plugin() -> PathBuf {
    static PLUGIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let beside = routerd().with_file_name("event-to-remote-claim");
            if beside.is_file() {
                return beside;
            }
            let target = routerd()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("plugin-for-tests");
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "event-to-remote-claim",
                    "--target-dir",
                ])
                .arg(&target)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo to build the example plugin");
            assert!(status.success(), "building the example plugin failed");
            target.join("debug/event-to-remote-claim")
        })
        .clone()
}

pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        Lab {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn state(&self) -> String {
        self.path("state/routerd.db").display().to_string()
    }
    pub fn config(&self) -> String {
        self.path("router.yaml").display().to_string()
    }
    /// Writes the example config with its plugin pointed at `plugin` and the given timeout.
    pub fn write_config(&self, plugin: &Path, timeout: &str) {
        let text = EXAMPLE
            .replace(PACKAGED_PLUGIN, &plugin.display().to_string())
            .replace("timeout: 10s", &format!("timeout: {timeout}"));
        std::fs::write(self.config(), text).unwrap();
    }
    /// A real executable shell script in the lab.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    pub fn ctl(&self, args: &[&str]) -> Output {
        cmd(routerctl()).args(args).output().unwrap()
    }
    pub fn routerd(&self, args: &[&str]) -> Output {
        cmd(routerd()).args(args).output().unwrap()
    }
    /// `routerctl federation event emit` of the README's observation with `extra` flags.
    pub fn emit(&self, extra: &[&str]) -> Output {
        let state = self.state();
        let mut args = vec![
            "federation",
            "event",
            "emit",
            "--state-file",
            &state,
            "--group",
            "cloudedge",
            "--type",
            "routerd.client.ipv4.observed",
            "--subject",
            "10.88.60.9/32",
            "--source-node",
            "onprem-router",
            "--payload",
            "address=10.88.60.9/32",
            "--payload",
            "domain=cloudedge-same-subnet",
            "--payload",
            "ownerSide=onprem",
            "--payload",
            "peerRef=onprem-main",
            "--payload",
            "providerRef=example-provider",
            "--ttl",
            "30m",
        ];
        args.extend_from_slice(extra);
        self.ctl(&args)
    }
    /// Starts `routerd serve` on this lab's config and state (inside network namespace `ns`
    /// when given), with its log in `<log>` in the lab.
    pub fn spawn_serve(&self, ns: Option<&str>, log: &str) -> std::process::Child {
        self.spawn_serve_with(ns, log, &[])
    }

    /// [`Lab::spawn_serve`] with extra flags (`--live`, `--withdraw-grace 0s`).
    pub fn spawn_serve_with(
        &self,
        ns: Option<&str>,
        log: &str,
        extra: &[&str],
    ) -> std::process::Child {
        let mut c = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(routerd());
                c
            }
            None => cmd(routerd()),
        };
        c.args([
            "serve",
            "--config",
            &self.config(),
            "--state-file",
            &self.state(),
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(self.path(log)).unwrap())
        .spawn()
        .unwrap()
    }

    pub fn serve_once(&self) -> Output {
        self.routerd(&[
            "serve",
            "--once",
            "--config",
            &self.config(),
            "--state-file",
            &self.state(),
        ])
    }
    pub fn render(&self) -> Output {
        self.ctl(&[
            "dynamic",
            "render",
            "--config",
            &self.config(),
            "--state-file",
            &self.state(),
        ])
    }
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ctl(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let v = self.json(&[
            "federation",
            "subscription",
            "runs",
            "--subscription",
            "EventSubscription/cloud-claims",
            "--state-file",
            &self.state(),
            "-o",
            "json",
        ]);
        v.as_array().cloned().unwrap_or_default()
    }
    /// Every stored event (expired included), as `routerctl … -o json` prints them.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let state = self.state();
        let out = self.ctl(&[
            "federation",
            "event",
            "list",
            "--state-file",
            &state,
            "--include-expired",
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array().cloned().unwrap_or_default()
    }
    pub fn parts(&self) -> Vec<serde_json::Value> {
        self.json(&[
            "dynamic",
            "list",
            "--state-file",
            &self.state(),
            "-o",
            "json",
        ])
        .as_array()
        .cloned()
        .unwrap()
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The RemoteAddressClaims of a rendered YAML document.
pub fn claims(rendered: &[u8]) -> Vec<serde_yaml::Value> {
    let doc: serde_yaml::Value = serde_yaml::from_slice(rendered).unwrap();
    doc["spec"]["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "RemoteAddressClaim")
        .cloned()
        .collect()
}

/// Runs a shell command and returns its output.
pub fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

/// Runs a shell command that must succeed.
pub fn run(cmd: &str) {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Why network-namespace tests cannot run here (`tools` must be installed too), if they cannot.
pub fn netns_unavailable(tools: &[&str]) -> Option<String> {
    if let Some(why) = std::env::var_os("ROUTERD_TEST_NO_NETNS") {
        return Some(why.to_string_lossy().into_owned());
    }
    if !sh("id -u").stdout.starts_with(b"0") {
        return Some("needs root for network namespaces".into());
    }
    for tool in tools {
        if !sh(&format!("command -v {tool}")).status.success() {
            return Some(format!("{tool} is not installed"));
        }
    }
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let probe = format!("rdprobe{}x{n}", std::process::id());
    if !sh(&format!("ip netns add {probe} && ip netns del {probe}"))
        .status
        .success()
    {
        return Some("ip netns add is not permitted here".into());
    }
    None
}

/// Polls `cond` every 50 ms for at most `limit`.
pub fn wait_until(limit: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// A command for one of our binaries. Cross-arch runs set ROUTERD_TEST_RUNNER (e.g.
/// `qemu-aarch64-static`) so the binaries run where binfmt_misc is not registered.
pub fn cmd(bin: impl AsRef<std::ffi::OsStr>) -> Command {
    match std::env::var_os("ROUTERD_TEST_RUNNER").filter(|r| !r.is_empty()) {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// RFC 3339 for one hour before now: observed then with a 30 m TTL, an event is expired but
/// still inside a 24 h retention.
pub fn hour_ago() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    routerd_model::Timestamp::from_unix(now - 3600).to_rfc3339()
}

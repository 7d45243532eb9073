//! Runs a trusted local plugin: a clean environment, JSON on stdin, capped output, a deadline.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use routerd_model::kinds::PluginSpec;
use routerd_model::{gojson, GoDuration};

/// stdout above this fails the run (Go HEAD's cap).
pub const STDOUT_LIMIT: usize = 4 * 1024 * 1024;
/// stderr above this fails the run.
pub const STDERR_LIMIT: usize = 64 * 1024;
/// How much stderr is kept for the record.
pub const STDERR_KEPT: usize = 8192;
pub const DEFAULT_TIMEOUT: GoDuration = GoDuration::from_secs(10);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What happened to one plugin process.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// `None` when the process never started, `-1` when it was killed by a signal.
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    /// At most [`STDERR_KEPT`] bytes.
    pub stderr: String,
    pub stdout_digest: String,
    pub duration: Duration,
    /// Why the run failed; `None` for exit 0 within limits.
    pub error: Option<String>,
}

/// Runs `spec.executable` with `stdin` and waits at most `spec.timeout`.
///
/// Unlike Go, the plugin runs in its own process group and the whole group is killed at the
/// deadline, so a grandchild holding stdout open cannot keep routerd waiting.
pub async fn run(name: &str, spec: &PluginSpec, stdin: Vec<u8>) -> Outcome {
    let started = Instant::now();
    let fail = |error: String| Outcome {
        error: Some(error),
        stdout_digest: gojson::sha256_hex(b""),
        ..Default::default()
    };
    let exe = spec.executable.trim();
    if let Err(e) = precheck(exe) {
        return fail(e);
    }
    let timeout = match spec.timeout.trim() {
        "" => DEFAULT_TIMEOUT,
        t => match GoDuration::parse(t) {
            Ok(d) if d.is_positive() => d,
            Ok(_) => return fail("plugin timeout must be greater than 0".into()),
            Err(e) => return fail(format!("plugin timeout must be a valid duration: {e}")),
        },
    };

    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_PATH.into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // BTreeMap iteration is sorted by key, as Go passes them.
    for (k, v) in &spec.env {
        let k = k.trim();
        if !k.is_empty() && !k.contains('=') {
            cmd.env(k, v);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("plugin {name} failed: {e}")),
    };
    let pgid = child.id();
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let work = async {
        // A plugin may exit without reading stdin; a broken pipe is not our failure.
        let feed = async move {
            let _ = child_stdin.write_all(&stdin).await;
            drop(child_stdin);
        };
        let (_, out, err, status) = tokio::join!(
            feed,
            read_capped(stdout, STDOUT_LIMIT),
            read_capped(stderr, STDERR_LIMIT),
            child.wait()
        );
        (out, err, status)
    };
    let result = tokio::time::timeout(timeout.to_std(), work).await;

    let mut outcome = Outcome {
        duration: started.elapsed(),
        ..Default::default()
    };
    match result {
        Err(_) => {
            if let Some(pid) = pgid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            outcome.exit_code = Some(-1);
            outcome.error = Some(format!("plugin {name} timed out after {timeout}"));
        }
        Ok((out, err, status)) => {
            let (out, out_over) = out.unwrap_or_default();
            let (err, err_over) = err.unwrap_or_default();
            outcome.stderr =
                String::from_utf8_lossy(&err[..err.len().min(STDERR_KEPT)]).into_owned();
            outcome.stdout_digest = gojson::sha256_hex(&out);
            outcome.stdout = out;
            let status = match status {
                Ok(s) => s,
                Err(e) => {
                    outcome.error = Some(format!("plugin {name} failed: {e}"));
                    return outcome;
                }
            };
            outcome.exit_code = Some(status.code().map(i64::from).unwrap_or(-1));
            outcome.error = if out_over {
                Some(format!("plugin {name} protocol failure: stdout output exceeded {STDOUT_LIMIT}-byte limit"))
            } else if err_over {
                Some(format!("plugin {name} protocol failure: stderr output exceeded {STDERR_LIMIT}-byte limit"))
            } else if let Some(sig) = status.signal() {
                Some(format!(
                    "plugin {name} failed: signal: {}",
                    signal_name(sig)
                ))
            } else if !status.success() {
                Some(format!(
                    "plugin {name} failed: exit status {}",
                    status.code().unwrap_or(-1)
                ))
            } else {
                None
            };
        }
    }
    if outcome.stdout_digest.is_empty() {
        outcome.stdout_digest = gojson::sha256_hex(&outcome.stdout);
    }
    outcome
}

fn precheck(exe: &str) -> Result<(), String> {
    if exe.is_empty() {
        return Err("plugin executable is required".into());
    }
    let meta = std::fs::metadata(exe)
        .map_err(|e| format!("plugin executable {exe:?} is not accessible: {e}"))?;
    if !meta.is_file() {
        return Err(format!("plugin executable {exe:?} is not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("plugin executable {exe:?} is not executable"));
    }
    Ok(())
}

/// Reads everything, keeping at most `cap` bytes; the flag says whether more arrived.
async fn read_capped<R: AsyncRead + Unpin>(
    mut r: R,
    cap: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut over = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok((kept, over));
        }
        let room = cap - kept.len();
        if n > room {
            over = true;
        }
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(nix::sys::signal::Signal::SIGKILL) => "killed".into(),
        Ok(nix::sys::signal::Signal::SIGTERM) => "terminated".into(),
        Ok(nix::sys::signal::Signal::SIGSEGV) => "segmentation fault".into(),
        Ok(nix::sys::signal::Signal::SIGABRT) => "aborted".into(),
        Ok(s) => s.as_str().to_lowercase(),
        Err(_) => format!("signal {sig}"),
    }
}

//! Bad input gets a clear error and loses nothing.

mod common;
use common::*;

fn assert_one_line_error(out: &std::process::Output, want: &str) {
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(want), "wanted {want:?} in {err:?}");
}

#[test]
fn emit_refuses_incomplete_or_malformed_flags_and_stores_nothing() {
    let lab = Lab::new();
    let state = lab.state();
    let cases: [(&[&str], &str); 5] = [
        (&["--type", "t"], "--group is required"),
        (&["--group", "g"], "--type is required"),
        (
            &["--group", "g", "--type", "t", "--payload", "novalue"],
            "payload must be key=value, got \"novalue\"",
        ),
        (&["--group", "g", "--type", "t", "--ttl", "30"], "flag -ttl"),
        (
            &["--group", "g", "--type", "t", "--observed-at", "yesterday"],
            "invalid --observed-at",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["federation", "event", "emit", "--state-file", &state];
        args.extend_from_slice(flags);
        assert_one_line_error(&lab.ctl(&args), want);
    }
    assert!(
        !std::path::Path::new(&state).exists(),
        "no state file was even created"
    );
}

fn invalid_config(lab: &Lab, body: &str) -> String {
    let text = format!("apiVersion: routerd.net/v1alpha1\nkind: Router\nmetadata: {{name: t}}\nspec:\n  resources:\n{body}");
    std::fs::write(lab.config(), text).unwrap();
    lab.config()
}

#[test]
fn validate_and_every_config_loading_command_name_the_resource_and_reason() {
    let lab = Lab::new();
    let config = invalid_config(
        &lab,
        "    - apiVersion: federation.routerd.net/v1alpha1
      kind: EventSubscription
      metadata: {name: s}
      spec: {groupRef: g, trigger: {pluginRef: p}}
    - apiVersion: plugin.routerd.net/v1alpha1
      kind: Plugin
      metadata: {name: p}
      spec: {executable: relative/plugin}
    - apiVersion: example.net/v1
      kind: Gizmo
      metadata: {name: g}
",
    );
    let out = lab.routerd(&["validate", "--config", &config]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for want in [
        "federation.routerd.net/v1alpha1/EventSubscription/s spec.match.types is required (at least one type)",
        "plugin.routerd.net/v1alpha1/Plugin/p spec.executable must be an absolute path",
        "unsupported resource kind Gizmo in example.net/v1/Gizmo/g",
        "(3 problem(s))",
    ] {
        assert!(err.contains(want), "{want:?} missing from {err}");
    }
    let out = lab.routerd(&[
        "serve",
        "--once",
        "--config",
        &config,
        "--state-file",
        &lab.state(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("spec.executable must be an absolute path"));
    for args in [
        vec![
            "dynamic",
            "render",
            "--config",
            &config,
            "--state-file",
            &lab.state(),
        ],
        vec!["plugin", "list", "--config", &config],
    ] {
        let out = lab.ctl(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("unsupported resource kind Gizmo"),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
}

#[test]
fn broken_yaml_is_a_parse_error_and_the_example_is_valid() {
    let lab = Lab::new();
    std::fs::write(lab.config(), "apiVersion: [unclosed\n").unwrap();
    let out = lab.routerd(&["validate", "--config", &lab.config()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("parse config {}", lab.config())),
        "{}",
        text(&out.stderr)
    );

    lab.write_config(&example_plugin(), "10s");
    let ok = lab.routerd(&["validate", "--config", &lab.config()]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("is valid (8 resources)"));
}

/// One good run, then `plugin` replaces the example plugin and a new event arrives.
fn run_with_failing_plugin(body: &str, timeout: &str) -> (Lab, std::process::Output) {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    assert!(lab.emit(&["--id", "evt-good"]).status.success());
    assert!(lab.serve_once().status.success());
    assert_eq!(lab.parts().len(), 1);

    let bad = lab.script("bad-plugin", body);
    lab.write_config(&bad, timeout);
    assert!(lab
        .emit(&[
            "--id",
            "evt-bad",
            "--subject",
            "10.88.60.10/32",
            "--payload",
            "address=10.88.60.10/32"
        ])
        .status
        .success());
    let started = std::time::Instant::now();
    let served = lab.serve_once();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "serve returned"
    );
    (lab, served)
}

fn assert_failed_without_damage(lab: &Lab, served: &std::process::Output, reason: &str) {
    assert!(
        served.status.success(),
        "serve survives a bad plugin: {}",
        text(&served.stderr)
    );
    assert!(
        text(&served.stdout).contains("Degraded"),
        "{}",
        text(&served.stdout)
    );
    let parts = lab.parts();
    assert_eq!(parts.len(), 1, "no part is stored for the failed run");
    assert_eq!(
        parts[0]["status"], "active",
        "the earlier part stays active"
    );
    let runs = lab.runs();
    let bad = runs.iter().find(|r| r["EventID"] == "evt-bad").unwrap();
    assert_eq!(bad["Status"], "failed");
    assert!(bad["Error"].as_str().unwrap().contains(reason), "{bad}");
    // Render still shows the good claim.
    lab.write_config(&example_plugin(), "10s");
    assert_eq!(claims(&lab.render().stdout).len(), 1);
}

#[test]
fn a_plugin_printing_garbage_fails_the_run_only() {
    let (lab, served) = run_with_failing_plugin("cat >/dev/null; echo '{{{ not yaml'", "5s");
    assert_failed_without_damage(&lab, &served, "decode plugin event-to-remote-claim stdout");
}

#[test]
fn a_plugin_exiting_non_zero_fails_the_run_only() {
    let (lab, served) = run_with_failing_plugin("cat >/dev/null; echo oops >&2; exit 42", "5s");
    assert_failed_without_damage(
        &lab,
        &served,
        "plugin event-to-remote-claim failed: exit status 42",
    );
}

#[test]
fn a_hanging_plugin_is_killed_at_its_timeout() {
    // The grandchild keeps stdout open: the whole process group must go.
    let (lab, served) = run_with_failing_plugin("sleep 30 & sleep 30", "1s");
    assert_failed_without_damage(
        &lab,
        &served,
        "plugin event-to-remote-claim timed out after 1s",
    );
}

#[test]
fn a_plugin_writing_10_mb_is_cut_off() {
    let (lab, served) = run_with_failing_plugin(
        "cat >/dev/null; head -c 10485760 /dev/zero | tr '\\0' 'x'",
        "10s",
    );
    assert_failed_without_damage(&lab, &served, "stdout output exceeded 4194304-byte limit");
}

#[test]
fn a_plugin_returning_an_invalid_claim_is_refused_before_it_breaks_render() {
    let (lab, served) = run_with_failing_plugin(
        r#"cat >/dev/null; echo '{"apiVersion":"plugin.routerd.net/v1alpha1","kind":"PluginResult","status":{"ttl":"5m","resources":[{"apiVersion":"hybrid.routerd.net/v1alpha1","kind":"RemoteAddressClaim","metadata":{"name":"bad"},"spec":{"address":"10.88.60.10/32"}}]}}'"#,
        "5s",
    );
    assert_failed_without_damage(&lab, &served, "dynamic part rejected");
}

#[test]
fn failed_runs_are_retried_up_to_three_attempts() {
    let (lab, _) = run_with_failing_plugin("exit 1", "5s");
    let bad = lab.script("bad-plugin", "exit 1");
    lab.write_config(&bad, "5s");
    for _ in 0..4 {
        assert!(lab.serve_once().status.success());
    }
    let runs = lab.runs();
    let r = runs.iter().find(|r| r["EventID"] == "evt-bad").unwrap();
    assert_eq!(r["Attempts"], 3);
    assert_eq!(r["Status"], "failed");
}

#[test]
fn a_state_file_that_is_not_sqlite_is_a_clear_error() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    std::fs::create_dir_all(lab.path("state")).unwrap();
    std::fs::write(lab.state(), "x".repeat(4096)).unwrap();
    let out = lab.emit(&[]);
    assert_one_line_error(&out, "is not a routerd SQLite state file");
    let out = lab.serve_once();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a routerd SQLite state file"));
    assert_eq!(
        std::fs::read(lab.state()).unwrap(),
        "x".repeat(4096).into_bytes(),
        "the file is untouched"
    );
}

#[test]
fn an_unwritable_state_location_is_a_clear_error() {
    let lab = Lab::new();
    let out = lab.ctl(&[
        "federation",
        "event",
        "emit",
        "--state-file",
        "/proc/routerd/nope.db",
        "--group",
        "g",
        "--type",
        "t",
    ]);
    assert_one_line_error(&out, "open state database /proc/routerd/nope.db");
}

#[test]
fn serve_refuses_a_bad_withdraw_grace_before_touching_anything() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    let out = lab.routerd(&[
        "serve",
        "--once",
        "--live",
        "--withdraw-grace",
        "10 minutes",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
    ]);
    assert_one_line_error(&out, "--withdraw-grace \"10 minutes\"");
    assert!(
        !std::path::Path::new(&lab.state()).exists(),
        "refused before the state file is created"
    );
}

#[test]
fn apply_and_claims_refuse_bad_flags_and_create_nothing() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    let (config, state) = (lab.config(), lab.state());
    let base = ["apply", "--config", &config, "--state-file", &state];
    let cases: [(&[&str], &str); 4] = [
        (&["--live", "--dry-run"], "--live and --dry-run contradict"),
        (&["--withdraw-grace", "soon"], "--withdraw-grace \"soon\""),
        (&["--withdraw-grace=-5m"], "must not be negative"),
        (&["-o", "yaml"], "yaml"),
    ];
    for (flags, want) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(flags);
        assert_one_line_error(&lab.routerd(&args), want);
    }
    assert!(
        !std::path::Path::new(&state).exists(),
        "no state file is created by a refused command"
    );
    // A dry run on a router that has stored nothing yet works and still creates nothing.
    let out = lab.routerd(&base);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("DRY RUN"));
    assert!(text(&out.stdout).contains("no RemoteAddressClaim in the effective config"));
    assert!(!std::path::Path::new(&state).exists());

    assert_one_line_error(
        &lab.ctl(&["claims", "--state-file", &state]),
        "no such file",
    );
    assert_one_line_error(
        &lab.ctl(&["claims", "--state-file", &state, "-o", "csv"]),
        "csv",
    );
    // An empty state says why there is nothing to show.
    assert!(lab.emit(&[]).status.success());
    let out = lab.ctl(&["claims", "--state-file", &state]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("no apply pass has run"),
        "{}",
        text(&out.stdout)
    );
    let out = lab.ctl(&["claims", "--state-file", &state, "-o", "json"]);
    assert_eq!(text(&out.stdout).trim(), "[]");
}

//! The receiver flow of the README, exactly as an operator runs it, against the built binaries.

mod common;
use common::*;

#[test]
fn emit_serve_once_render_yields_the_annotated_claim() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");

    let emitted = lab.emit(&["-o", "json"]);
    assert!(emitted.status.success(), "{}", text(&emitted.stderr));
    let event: serde_json::Value = serde_json::from_slice(&emitted.stdout).unwrap();
    let id = event["ID"].as_str().unwrap().to_string();
    assert!(id.starts_with("evt-"), "{id}");
    assert_eq!(event["Payload"]["peerRef"], "onprem-main");

    let served = lab.serve_once();
    assert!(served.status.success(), "{}", text(&served.stderr));
    assert!(
        text(&served.stdout).contains("subscription cloud-claims: Applied (1 event(s) matched)"),
        "{}",
        text(&served.stdout)
    );

    let rendered = lab.render();
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let doc: serde_yaml::Value = serde_yaml::from_slice(&rendered.stdout).unwrap();
    let resources = doc["spec"]["resources"].as_sequence().unwrap();
    assert_eq!(resources.len(), 9, "every startup resource plus the claim");
    let claim = &resources[8];
    assert_eq!(claim["kind"], "RemoteAddressClaim");
    assert_eq!(claim["metadata"]["name"], "onprem-10-88-60-9");
    let a = &claim["metadata"]["annotations"];
    assert_eq!(a["routerd.net/event-id"], id.as_str());
    assert_eq!(a["routerd.net/event-group"], "cloudedge");
    assert_eq!(a["routerd.net/event-subject"], "10.88.60.9/32");
    assert_eq!(
        a["routerd.net/dynamic-source"],
        "EventSubscription/cloud-claims"
    );
    let spec = &claim["spec"];
    assert_eq!(spec["address"], "10.88.60.9/32");
    assert_eq!(spec["domainRef"], "cloudedge-same-subnet");
    assert_eq!(spec["ownerSide"], "onprem");
    assert_eq!(spec["capture"]["type"], "provider-secondary-ip");
    assert_eq!(spec["delivery"]["tunnelInterface"], "wg-hybrid");

    // JSON rendering carries the same document.
    let json = lab.json(&[
        "dynamic",
        "render",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert_eq!(
        json["spec"]["resources"][8]["metadata"]["name"],
        "onprem-10-88-60-9"
    );

    // The run is on record.
    let runs = lab.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["Status"], "succeeded");
    assert_eq!(runs[0]["EventID"], id.as_str());
}

#[test]
fn a_second_pass_adds_nothing_and_a_second_observation_still_renders_one_claim() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    assert!(lab.emit(&[]).status.success());
    assert!(lab.serve_once().status.success());
    let first = lab.render();

    let again = lab.serve_once();
    assert!(
        text(&again.stdout).contains("Idle (0 event(s) matched)"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(lab.parts().len(), 1, "a second pass stores no part");
    assert_eq!(lab.render().stdout, first.stdout, "and changes nothing");

    // The receiver now captures 10.88.60.9: a local observation of it is refused (Go's guard);
    // a second observation from the peer still renders one claim (tests/federation.rs).
    let refused = lab.emit(&["--id", "evt-second-sighting"]);
    assert!(!refused.status.success());
    assert_eq!(
        text(&refused.stderr).trim_end(),
        "routerctl: federation observed event for 10.88.60.9 rejected: address is locally captured by RemoteAddressClaim/onprem-10-88-60-9 from EventSubscription/cloud-claims"
    );
    assert_eq!(lab.parts().len(), 1);
}

#[test]
fn the_same_id_delivered_twice_never_reruns_the_plugin() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    assert!(lab.emit(&["--id", "evt-1"]).status.success());
    assert!(
        lab.emit(&["--id", "evt-1"]).status.success(),
        "a duplicate id is accepted (and merged)"
    );
    assert!(lab.serve_once().status.success());
    assert!(lab.serve_once().status.success());
    let runs = lab.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["Attempts"], 1);
    assert_eq!(lab.parts().len(), 1);
    assert_eq!(
        lab.parts()[0]["source"],
        "EventSubscription/cloud-claims/7b409f932d2c88e9"
    );
}

#[test]
fn expired_events_are_never_run() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    let hour_ago = hour_ago();
    let out = lab.emit(&["--observed-at", &hour_ago, "--id", "old"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let served = lab.serve_once();
    assert!(text(&served.stdout).contains("Idle (0 event(s) matched)"));
    assert!(lab.runs().is_empty());
    let listed = lab.json(&[
        "federation",
        "event",
        "list",
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert!(listed.is_null(), "expired events are hidden: {listed}");
    let all = lab.json(&[
        "federation",
        "event",
        "list",
        "--state-file",
        &lab.state(),
        "--include-expired",
        "-o",
        "json",
    ]);
    assert_eq!(all[0]["ID"], "old");
}

#[test]
fn routerd_demo_runs_the_flow_on_the_embedded_config() {
    let out = cmd(routerd())
        .args(["demo", "--plugin"])
        .arg(example_plugin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("subscription cloud-claims: Applied"),
        "{stdout}"
    );
    assert!(stdout.contains("name: onprem-10-88-60-9"), "{stdout}");
    assert!(
        stdout.contains("routerd.net/dynamic-source: EventSubscription/cloud-claims"),
        "{stdout}"
    );
    // The apply stage's dry run (its phase depends on this machine's interfaces).
    assert!(
        stdout.contains("DRY RUN: nothing on the host is changed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RemoteAddressClaim onprem-10-88-60-9 (10.88.60.9/32): "),
        "{stdout}"
    );
    assert!(stdout.contains("$ routerctl claims"), "{stdout}");
    assert!(
        stdout.contains("onprem-10-88-60-9  10.88.60.9/32"),
        "{stdout}"
    );
}

#[test]
fn routerctl_is_chosen_by_argv0_and_version_is_bare() {
    let out = cmd(routerd()).arg("--version").output().unwrap();
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", env!("CARGO_PKG_VERSION"))
    );
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("routerctl");
    std::os::unix::fs::symlink(routerd(), &link).unwrap();
    let help = cmd(&link).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(
        text(&help.stdout).contains("federation"),
        "{}",
        text(&help.stdout)
    );
    let daemon_help = cmd(routerd()).arg("--help").output().unwrap();
    assert!(text(&daemon_help.stdout).contains("serve"));
}

#[test]
fn go_style_single_dash_flags_work() {
    let lab = Lab::new();
    let out = lab.ctl(&[
        "fed",
        "event",
        "emit",
        "-state-file",
        &lab.state(),
        "-group",
        "g",
        "-type",
        "t",
        "-id",
        "x",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ID"], "x");
    assert_eq!(v["DedupeKey"], "x");
    assert!(v["Payload"].is_null());
    assert_eq!(v["ExpiresAt"], "0001-01-01T00:00:00Z");
}

#[test]
fn plugins_see_a_clean_environment_and_the_request_on_stdin() {
    let lab = Lab::new();
    let env_file = lab.path("env.txt");
    let stdin_file = lab.path("stdin.json");
    let plugin = lab.script(
        "probe-plugin",
        &format!(
            "cat > {stdin}; env > {env}; echo '{{\"apiVersion\":\"plugin.routerd.net/v1alpha1\",\"kind\":\"PluginResult\",\"status\":{{\"ttl\":\"5m\"}}}}'",
            stdin = stdin_file.display(),
            env = env_file.display()
        ),
    );
    lab.write_config(&plugin, "10s");
    let config = std::fs::read_to_string(lab.config()).unwrap().replace(
        "        timeout: 10s\n",
        "        timeout: 10s\n        env: {PLUGIN_MODE: probe}\n",
    );
    std::fs::write(lab.config(), config).unwrap();
    assert!(lab.emit(&["--id", "evt-env"]).status.success());
    let served = cmd(routerd())
        .args([
            "serve",
            "--once",
            "--config",
            &lab.config(),
            "--state-file",
            &lab.state(),
        ])
        .env("SECRET_OF_ROUTERD", "must-not-leak")
        .output()
        .unwrap();
    assert!(
        text(&served.stdout).contains("Applied"),
        "{}{}",
        text(&served.stdout),
        text(&served.stderr)
    );

    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.lines().any(|l| l == "PLUGIN_MODE=probe"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(
        !env.contains("SECRET_OF_ROUTERD") && !env.contains("HOME="),
        "inherited: {env}"
    );

    let request: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stdin_file).unwrap()).unwrap();
    assert_eq!(request["kind"], "PluginRequest");
    assert_eq!(
        request["spec"]["trigger"]["topic"],
        "routerd.federation.subscription/cloud-claims"
    );
    assert_eq!(request["spec"]["events"][0]["id"], "evt-env");
    assert!(
        !std::fs::read(&stdin_file).unwrap().ends_with(b"\n"),
        "compact, no trailing newline"
    );
}

#[test]
fn plugin_list_run_and_dynamic_describe() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    let list = lab.ctl(&["plugin", "list", "--config", &lab.config()]);
    let text_list = text(&list.stdout);
    assert!(text_list.starts_with("NAME"), "{text_list}");
    assert!(
        text_list.contains("event-to-remote-claim")
            && text_list.contains("observe.cloud,propose.dynamicConfig"),
        "{text_list}"
    );

    // The example plugin proposes nothing without events; a dry run stores nothing.
    let dry = lab.json(&[
        "plugin",
        "run",
        "event-to-remote-claim",
        "--dry-run",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["stored"], false);
    assert_eq!(dry["source"], "Plugin/event-to-remote-claim");
    assert!(
        !std::path::Path::new(&lab.state()).exists(),
        "--dry-run writes nothing"
    );

    let run = lab.json(&[
        "plugin",
        "run",
        "event-to-remote-claim",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert_eq!(run["stored"], true);
    assert_eq!(run["part"]["spec"]["generation"], 1);
    let again = lab.json(&[
        "plugin",
        "run",
        "event-to-remote-claim",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert_eq!(
        again["part"]["spec"]["generation"], 2,
        "each manual run is a new generation"
    );
    let missing = lab.ctl(&[
        "plugin",
        "run",
        "nope",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
    ]);
    assert!(text(&missing.stderr).contains("Plugin \"nope\" not found in startup config"));

    let described = lab.ctl(&[
        "dynamic",
        "describe",
        "Plugin/event-to-remote-claim",
        "--state-file",
        &lab.state(),
    ]);
    let d = text(&described.stdout);
    let generations: Vec<&str> = d
        .lines()
        .filter(|l| l.starts_with("Generation:"))
        .map(|l| l.trim_start_matches("Generation:").trim())
        .collect();
    assert_eq!(generations, ["2", "1"], "{d}");
    let as_json = lab.json(&[
        "dynamic",
        "describe",
        "Plugin/event-to-remote-claim",
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert_eq!(as_json.as_array().unwrap().len(), 2);
    assert_eq!(as_json[0]["generation"], 2, "newest generation first");
    let unknown = lab.json(&[
        "dynamic",
        "describe",
        "Plugin/none",
        "--state-file",
        &lab.state(),
        "-o",
        "json",
    ]);
    assert_eq!(unknown, serde_json::json!([]));
}

#[test]
fn prune_applies_the_group_retention_and_its_dry_run_deletes_nothing() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    // Retention of the example: maxAge 24h, maxEvents 1000.
    let two_days_ago = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        routerd_model::Timestamp::from_unix(now - 2 * 86_400).to_rfc3339()
    };
    assert!(lab
        .emit(&["--id", "ancient", "--observed-at", &two_days_ago])
        .status
        .success());
    assert!(lab
        .emit(&["--id", "fresh", "--subject", "10.88.60.20/32"])
        .status
        .success());
    let base = [
        "federation",
        "event",
        "prune",
        "--config",
        &lab.config(),
        "--state-file",
        &lab.state(),
    ];

    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let out = lab.ctl(&dry);
    assert_eq!(
        text(&out.stdout),
        "group cloudedge: would prune 1 event(s)\n  ancient\n"
    );
    assert_eq!(lab.events().len(), 2);

    let out = lab.ctl(&base);
    assert_eq!(
        text(&out.stdout),
        "group cloudedge: pruned 1 event(s)\n  ancient\n"
    );
    let ids: Vec<_> = lab
        .events()
        .iter()
        .map(|e| e["ID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["fresh"]);

    let mut by_count = base.to_vec();
    by_count.extend(["--max-events", "0", "--max-age", "1s"]);
    assert!(lab.ctl(&by_count).status.success());
    let mut unknown = base.to_vec();
    unknown.extend(["--group", "nope"]);
    assert!(text(&lab.ctl(&unknown).stderr).contains("EventGroup \"nope\" not found"));
}

#[test]
fn dynamic_delete_removes_a_part_by_hand() {
    let lab = Lab::new();
    lab.write_config(&example_plugin(), "10s");
    assert!(lab.emit(&["--id", "evt-1"]).status.success());
    assert!(lab.serve_once().status.success());
    assert_eq!(claims(&lab.render().stdout).len(), 1);

    let source = "EventSubscription/cloud-claims/7b409f932d2c88e9";
    let out = lab.ctl(&["dynamic", "delete", source, "--state-file", &lab.state()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("deleted 1 generation(s) of {source}\n")
    );
    assert!(
        claims(&lab.render().stdout).is_empty(),
        "the claim is gone from the effective config"
    );
    assert!(lab.parts().is_empty());

    let again = lab.ctl(&["dynamic", "delete", source, "--state-file", &lab.state()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("no dynamic part with source"),
        "{}",
        text(&again.stderr)
    );
    // The event's run stays succeeded: the plugin is not run again for it.
    assert!(text(&lab.serve_once().stdout).contains("Idle"));
}

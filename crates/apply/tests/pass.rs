//! A dry-run pass on a real state database: it reports withdrawals from the journal and
//! changes nothing, not even the journal. (Live passes are tested in network namespaces by the
//! routerd crate.)

use std::sync::Arc;

use routerd_apply::pass::{pass, Options, WithdrawalState};
use routerd_model::{GoDuration, Router, Timestamp};
use routerd_state::{ManualClock, Store};

fn router() -> Router {
    routerd_model::load_str(
        include_str!("../../../examples/receiver-cloud.yaml"),
        "receiver",
    )
    .unwrap()
    .router
}

fn run(store: &Store, opts: &Options) -> routerd_apply::PassReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(pass(store, &router(), opts))
        .unwrap()
}

#[test]
fn a_dry_run_shows_withdrawals_and_leaves_the_journal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_unix(1_800_000_000));
    let store = Store::open(&dir.path().join("s.db"), Arc::new(clock.clone())).unwrap();
    let route = r#"{"type":"route","destination":"10.88.60.9","device":"wg-hybrid","metric":120}"#;
    store
        .journal_record(
            "route 10.88.60.9/32 dev wg-hybrid metric 120",
            "gone",
            route,
        )
        .unwrap();
    // Hostile or damaged rows must not stop the pass.
    store
        .journal_record("mystery", "gone-too", "{not json")
        .unwrap();
    let before = store.journal().unwrap();

    let opts = Options {
        withdraw_grace: GoDuration::from_secs(600),
        ..Default::default()
    };
    let report = run(&store, &opts);
    assert!(report.claims.is_empty(), "the startup config has no claims");
    assert_eq!(report.withdrawals.len(), 2);
    let w = &report.withdrawals[0];
    assert_eq!(w.state, WithdrawalState::Waiting);
    assert_eq!(w.due, Timestamp::from_unix(1_800_000_600));
    assert_eq!(
        w.command.as_deref(),
        Some("ip route del 10.88.60.9/32 dev wg-hybrid metric 120")
    );
    assert_eq!(report.withdrawals[1].command, None);

    let zero = Options {
        withdraw_grace: GoDuration::from_secs(0),
        ..Default::default()
    };
    let report = run(&store, &zero);
    assert!(report
        .withdrawals
        .iter()
        .all(|w| w.state == WithdrawalState::WouldWithdraw));
    let text = routerd_apply::print::text(&report);
    assert!(
        text.starts_with(routerd_apply::print::DRY_RUN_HEADER),
        "{text}"
    );
    assert!(
        text.contains("would withdraw  ip route del 10.88.60.9/32 dev wg-hybrid metric 120  (RemoteAddressClaim gone is gone)"),
        "{text}"
    );
    assert_eq!(store.journal().unwrap(), before, "a dry run writes nothing");
    assert!(store.claim_statuses().unwrap().is_empty());
}

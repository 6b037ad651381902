//! `orderflow verify` end to end: a real 3-node nats-server cluster, the services as separate
//! `orderflow serve` processes (two inventory and two payment instances), load, and a seeded
//! fault schedule; then the invariant check. The short run must pass; a sabotaged run must fail
//! and name what it broke.

use std::path::PathBuf;
use std::time::Duration;

use orderflow::verify::{Fault, FaultFamily, Sabotage, VerifyConfig, run_verify};
use orderflow_test_support::DbBackend;
use tokio_util::sync::CancellationToken;

fn config(dir: &tempfile::TempDir, duration: Duration, faults: usize, seed: u64) -> VerifyConfig {
    let mut c = VerifyConfig::new(
        PathBuf::from(env!("CARGO_BIN_EXE_orderflow")),
        dir.path().to_path_buf(),
        duration,
        faults,
        seed,
    );
    c.rate = 40.0;
    c.max_hold = Duration::from_secs(6);
    // CI shares two cores with the rest of the test suite: a restarted NATS node can take tens of
    // seconds to serve its streams again there (docs/RELIABILITY.md, known limits).
    c.recovery_timeout = Duration::from_secs(120);
    c
}

/// The CI configuration: about a minute of load and six faults, one of each family and more
/// (a service instance killed, a NATS node frozen or killed, a gateway fault, a duplicate storm),
/// on SQLite files and on PostgreSQL (where two instances' group commits once livelocked on
/// deadlocks: a run like this is what found it).
async fn a_short_run_survives_its_faults_with_every_invariant_intact(backend: DbBackend) {
    orderflow_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, Duration::from_secs(60), 6, 2);
    if backend == DbBackend::Postgres {
        c.database_url = Some(orderflow_test_support::postgres_url());
    }
    let report = run_verify(&c, &CancellationToken::new()).await.unwrap();
    println!("{}", report.render());
    assert!(report.passed, "{}", report.render());
    assert_eq!(report.faults_injected, 6);
    assert!(report.faults.iter().all(|f| f.recovered_after_ms.is_some() && f.error.is_none()));
    let kinds = |pred: fn(&Fault) -> bool| report.faults.iter().filter(|f| pred(&f.fault)).count();
    assert!(kinds(|f| matches!(f, Fault::KillService { .. })) >= 1);
    assert!(kinds(|f| matches!(f, Fault::PauseNats { .. } | Fault::KillNats { .. })) >= 1);
    assert!(kinds(|f| matches!(f, Fault::DuplicateStorm { .. })) >= 1);
    assert!(report.check.confirmed > 0 && report.check.pending == 0);
    assert!(report.check.orders as u64 >= report.load.accepted);
    assert_eq!(report.check.charges_succeeded, report.check.confirmed);
    assert!(report.instances.iter().filter(|i| i.starts_with("inventory-")).count() >= 2);
    assert!(report.instances.iter().filter(|i| i.starts_with("payment-")).count() >= 2);
}

/// Two of the three NATS nodes killed at once: no stream has a quorum, so no publish is
/// acknowledged. Orders are still accepted (their events wait in the order service's outbox),
/// the flow resumes once one node is back, and at the end every accepted order is terminal with
/// every invariant intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_two_of_three_nats_nodes_loses_nothing_and_the_flow_resumes_when_one_returns() {
    orderflow_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, Duration::from_secs(24), 1, 11);
    c.only = vec![FaultFamily::Quorum];
    let report = run_verify(&c, &CancellationToken::new()).await.unwrap();
    println!("{}", report.render());
    assert!(report.passed, "{}", report.render());
    let [fault] = &report.faults[..] else { panic!("one fault expected: {:?}", report.faults) };
    assert!(matches!(fault.fault, Fault::QuorumLoss { .. }), "{:?}", fault.fault);
    assert!(fault.recovered_after_ms.is_some() && fault.error.is_none(), "{fault:?}");
    // Orders kept coming while there was no quorum: their events were held, not refused or lost.
    let held: u64 = fault
        .detail
        .as_deref()
        .and_then(|d| d.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no outbox count in {:?}", fault.detail));
    assert!(held > 0, "{:?}", fault.detail);
    assert_eq!(report.check.pending, 0);
    assert!(report.check.orders as u64 >= report.load.accepted);
    assert_eq!(report.check.charges_succeeded, report.check.confirmed);
}

/// A rolling schema upgrade under load (issue 14): every instance starts with v1 only, then all
/// of them are restarted one at a time into each next stage — consumers know v2, producers
/// dual-publish, producers v2 only, v1 retired — while orders keep coming. No invariant breaks,
/// nothing is dead-lettered (no consumer ever meets a version it does not accept) and no order
/// is left pending.
async fn a_rolling_upgrade_from_v1_to_v2_under_load_loses_and_dead_letters_nothing(backend: DbBackend) {
    orderflow_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, Duration::from_secs(60), 4, 5);
    c.only = vec![FaultFamily::Upgrade];
    if backend == DbBackend::Postgres {
        c.database_url = Some(orderflow_test_support::postgres_url());
    }
    let report = run_verify(&c, &CancellationToken::new()).await.unwrap();
    println!("{}", report.render());
    assert!(report.passed, "{}", report.render());
    let stages: Vec<_> = report.faults.iter().map(|f| f.fault.clone()).collect();
    assert_eq!(stages, (1..=4).map(|stage| Fault::Upgrade { stage }).collect::<Vec<_>>());
    assert!(
        report.faults.iter().all(|f| f.recovered_after_ms.is_some() && f.error.is_none()),
        "{:?}",
        report.faults
    );
    assert!(report.check.dlq.is_empty(), "dead letters: {:?}", report.check.dlq);
    // "orders.created v1 a→b, v2 c→d": counted before and after each step's restarts.
    let counts: Vec<[u64; 4]> = report
        .faults
        .iter()
        .map(|f| {
            let detail = f.detail.as_deref().unwrap_or_default();
            let numbers: Vec<u64> =
                detail.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
            // v1 a b v2 c d …: the version digits come before each pair.
            [numbers[1], numbers[2], numbers[4], numbers[5]]
        })
        .collect();
    println!("orders.created per step (v1 before, v1 after, v2 before, v2 after): {counts:?}");
    assert_eq!(counts[0][3], 0, "no v2 before the producers dual-publish");
    assert!(counts[2][2] > 0, "dual publishing published v2");
    assert_eq!(counts[3][0], counts[2][1], "no v1 once every producer is on v2 only");
    assert!(counts[3][2] > counts[2][3], "v2 kept flowing");
    assert_eq!(report.check.pending, 0);
    assert!(report.check.confirmed > 0);
    assert!(report.check.orders as u64 >= report.load.accepted);
}

/// The suite can fail: after a run, one product gets a unit committed twice (what a handler
/// that applied an event twice would leave), and the report must name it. On PostgreSQL, so
/// that the suite's PostgreSQL path runs in CI too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_applied_commit_is_reported_as_a_violation() {
    orderflow_telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, Duration::from_secs(8), 1, 7);
    c.database_url = Some(orderflow_test_support::postgres_url());
    c.sabotage = Some(Sabotage::DoubleApply);
    let report = run_verify(&c, &CancellationToken::new()).await.unwrap();
    println!("{}", report.render());
    assert!(!report.passed);
    let sabotage = report.sabotage.clone().unwrap();
    let product = sabotage.split_whitespace().find(|w| w.starts_with("sku-")).unwrap();
    assert!(
        report.check.violations.iter().any(|v| v.invariant == 2 && v.subject == product),
        "no invariant-2 violation for {product}: {:?}",
        report.check.violations
    );
    assert!(report.database.starts_with("PostgreSQL"));
}

orderflow_test_support::both_databases!(
    a_short_run_survives_its_faults_with_every_invariant_intact,
    a_rolling_upgrade_from_v1_to_v2_under_load_loses_and_dead_letters_nothing,
);

//! `orderflow load` and `orderflow bench --quick` through their library functions, against real
//! systems (own nats-server, SQLite or PostgreSQL). No timing assertions: only that every order
//! is accounted for and that the reports are complete.

use std::time::Duration;

use orderflow::bench::{BenchConfig, run_bench};
use orderflow::load::{
    LoadConfig, OrderMix, ProductMix, Schedule, Share, SpawnedSystem, Target, Until, run_load,
};
use tokio_util::sync::CancellationToken;

fn mix(express: f64, duplicates: f64) -> OrderMix {
    OrderMix {
        express_share: Share::parse(express).unwrap(),
        duplicate_key_share: Share::parse(duplicates).unwrap(),
        ..OrderMix::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_on_a_spawned_system_accounts_for_every_order() {
    orderflow_telemetry::init_for_tests();
    let mut config = LoadConfig::new(
        Target::Spawn { database_url: None },
        Schedule::Open { rate: 100.0 },
        Until::Count(150),
    );
    config.mix = mix(0.3, 0.2);
    config.restock = Some(1_000_000);

    let report = run_load(&config, &CancellationToken::new()).await.unwrap();

    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.accepted, 150);
    assert_eq!(report.confirmed, 150, "{}", report.render());
    assert_eq!(report.pending, 0);
    assert!(report.duplicates.sent > 0 && report.duplicates.mismatched == 0, "{:?}", report.duplicates);
    let analytics = report.analytics.as_ref().expect("spawn mode cross-checks the analytics service");
    assert!(analytics.equal && analytics.accepted == 150 && analytics.confirmed == 150, "{analytics:?}");
    let inv = report.invariants.as_ref().expect("invariants are checked in spawn mode");
    assert!(inv.ok, "{:?}", inv.violations);
    assert!(report.latency_ms.accept.p50 > 0.0);
    assert!(report.latency_ms.confirmed_standard.count > 0 && report.latency_ms.confirmed_express.count > 0);
    assert_eq!(
        report.latency_ms.confirmed_standard.count + report.latency_ms.confirmed_express.count,
        report.confirmed
    );
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert!(json["latency_ms"]["accept"]["p99"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_against_a_running_system_sees_sold_out_orders_cancelled() {
    orderflow_telemetry::init_for_tests();
    // sku-010 is a scarce demo product (5 units): most orders for it end out_of_stock.
    let mut system = SpawnedSystem::start(None, None, &[]).await.unwrap();
    let mut config = LoadConfig::new(
        Target::Running(system.endpoints()),
        Schedule::Closed { clients: 4 },
        Until::Count(40),
    );
    config.mix = OrderMix { products: ProductMix::parse("sku-010").unwrap(), ..mix(0.0, 0.0) };

    let report = run_load(&config, &CancellationToken::new()).await.unwrap();
    system.stop().await.unwrap();

    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.accepted, 40);
    assert_eq!(report.confirmed, 5, "{}", report.render());
    assert_eq!(report.cancelled.get("out_of_stock"), Some(&35));
    assert!(report.invariants.is_none(), "a running system's databases are not read");
    assert_eq!(report.sustainable, None, "a closed loop offers no rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_run_on_postgres_checks_invariants_and_drops_its_schemas() {
    orderflow_telemetry::init_for_tests();
    let url = orderflow_test_support::postgres_url();
    let mut config = LoadConfig::new(
        Target::Spawn { database_url: Some(url) },
        Schedule::Open { rate: 50.0 },
        Until::Elapsed(Duration::from_secs(1)),
    );
    config.mix = mix(0.5, 0.1);
    config.restock = Some(1_000_000);

    let report = run_load(&config, &CancellationToken::new()).await.unwrap();

    assert!(report.passed(), "{}", report.render());
    assert!(report.target.contains("PostgreSQL"), "{}", report.target);
    assert_eq!(report.confirmed, report.accepted);
    assert!(report.invariants.as_ref().is_some_and(|i| i.ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_produces_a_complete_report() {
    orderflow_telemetry::init_for_tests();
    let out = tempfile::tempdir().unwrap();
    let config = BenchConfig {
        out_dir: Some(out.path().to_path_buf()),
        verbose: false,
        exe: Some(env!("CARGO_BIN_EXE_orderflow").into()),
        ..BenchConfig::quick()
    };

    let report = run_bench(&config, &CancellationToken::new()).await.unwrap();

    let j = &report.jetstream;
    for (name, v) in [
        ("raw publish", j.raw_publish),
        ("raw consume 200", j.raw_consume_batch_200),
        ("raw consume 1000", j.raw_consume_batch_1000),
        ("publish_all", j.publish_all),
        ("consumer runtime", j.consumer_runtime),
        ("consumer runtime, wide", j.consumer_runtime_wide),
    ] {
        assert!(v > 0.0, "{name}: {v}");
    }
    let sqlite = &report.saga[0];
    assert_eq!(sqlite.database, "SQLite");
    assert!(!sqlite.steps.is_empty());
    assert!(sqlite.steps.iter().all(|s| s.accept_rate > 0.0 && s.completed_rate > 0.0));
    assert!(report.fixed_rate.accepted > 0 && report.fixed_rate.confirmed_latency.p99 > 0.0);
    assert!(report.fixed_rate.invariants_ok, "{:?}", report.fixed_rate);
    assert!(report.express.probes > 0);
    assert!(report.express.express.count > 0 && report.express.standard.count > 0);
    assert!(report.resources.peak_rss_under_load_bytes > 0 && report.resources.peak_rss_bytes > 0);
    assert!(report.resources.binary_bytes > 0);
    assert!(report.resources.systems_started >= 3 && report.resources.ready_max_ms > 0.0);
    let cost = &report.cost[0];
    assert_eq!(cost.database, "SQLite");
    assert!(cost.orders > 0 && cost.system_us > 0.0 && cost.nats_us > 0.0 && cost.load_us > 0.0, "{cost:?}");
    assert!(cost.log_bytes_per_order > 0.0, "{cost:?}");
    for rss in [&cost.system_rss, &cost.nats_rss] {
        assert!(rss.start > 0 && rss.warm > 0 && rss.end > 0 && rss.peak >= rss.end, "{cost:?}");
    }
    assert!(cost.load_rss.warm > 0 && cost.load_rss.peak >= cost.load_rss.warm, "{cost:?}");
    assert_eq!(report.goals.len(), 8);
    let md = std::fs::read_to_string(out.path().join("bench.md")).unwrap();
    assert!(md.contains("## Saga capacity on SQLite"), "{md}");
    assert!(md.contains("## Cost per order"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("bench.json")).unwrap()).unwrap();
    assert!(json["jetstream"]["raw_publish"].as_f64().unwrap() > 0.0);
}

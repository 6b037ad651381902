// Keep this a separate test binary: other tests in the same process would disturb its heap count.
//! Memory stays flat while orders flow. `orderflow up` once grew by ~1.7 KB per order for as
//! long as it ran (histogram samples nobody scraped, gateway-sim's in-memory ledger, …); this
//! test runs the same in-process system with the production log subscriber and metrics
//! recorder, sends two batches of orders to warm it up, then two stretches of two more, and
//! requires at least one stretch to leave the heap (within a high-water allowance) where it
//! found it.
//!
//! It counts the Rust heap with an instrumented global allocator (its own test binary, since a
//! global allocator is per binary): exact, and unmoved by SQLite's page caches (which use the C
//! allocator and fill up to a fixed size) or by the allocator's fragmentation, which make RSS
//! a poor signal over a few thousand orders. RSS is printed beside it. The long run with RSS
//! over time is `orderflow bench` and docs/PERFORMANCE.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::time::Duration;

use orderflow::invariants;
use orderflow::load::{
    LoadConfig, OrderMix, SPAWN_RESTOCK, Schedule, Share, SpawnedSystem, Target, Until, proc_status_bytes,
    run_load,
};
use orderflow_telemetry::LogFormat;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Orders per batch.
const BATCH: u64 = 3_000;
/// What further batches may add to the heap, per order. A leak is linear in the orders; what
/// this allows for is not: buffers, slabs and maps grow to the high-water mark of how much was
/// in flight at once, which a run with a larger burst pushes a little higher, once (measured:
/// 5–82 B per order over one stretch of two batches, on a busy machine; below 20 B in the
/// smaller of two stretches). The leaks this test has caught were ~60 B (a prepared
/// statement per outbox mark size) and ~90 B (histogram samples nobody scraped) per order; the
/// gateway's in-memory ledger was ~450 B.
const ALLOWED_BYTES_PER_ORDER: i64 = 48;

fn live_heap_bytes() -> i64 {
    let s = HEAP.stats();
    // A realloc is already counted in both (its growth as allocated, its shrinking as
    // deallocated); `bytes_reallocated` is the same change again.
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// The least live heap over a little more than one metrics upkeep period: what is left once
/// the last batch's transient buffers are freed and its histogram samples are folded into
/// their buckets (which a recorder that kept them would never do).
async fn settled_heap_bytes() -> i64 {
    let window = orderflow_telemetry::metrics::UPKEEP_EVERY + Duration::from_secs(1);
    let end = tokio::time::Instant::now() + window;
    let mut least = live_heap_bytes();
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        least = least.min(live_heap_bytes());
    }
    least
}

fn rss_mb() -> f64 {
    proc_status_bytes("/proc/self/status", "VmRSS:").unwrap_or(0) as f64 / 1e6
}

/// Sends one batch and waits until every order is terminal; returns how many were accepted.
/// The report (latency histograms and all) is dropped before the caller measures.
async fn batch(system: &SpawnedSystem, restock: bool) -> u64 {
    let mut config = LoadConfig::new(
        Target::Running(system.endpoints()),
        Schedule::Closed { clients: 16 },
        Until::Count(BATCH),
    );
    // Express orders and duplicate idempotency keys take paths of their own: include them.
    config.mix = OrderMix {
        express_share: Share::parse(0.2).unwrap(),
        duplicate_key_share: Share::parse(0.1).unwrap(),
        ..OrderMix::default()
    };
    config.restock = restock.then_some(SPAWN_RESTOCK);
    config.admin_token = Some(orderflow_platform::http::Secret::new(system.system.admin_token.as_str()));
    config.progress = false;
    let report = run_load(&config, &CancellationToken::new()).await.unwrap();
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.pending, 0, "{}", report.render());
    report.accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn further_orders_leave_the_heap_where_the_ones_before_left_it() {
    // The production subscriber (JSON lines at info), writing nowhere.
    orderflow_telemetry::init_writing_to(LogFormat::Json, "info", std::io::sink);
    let mut system = SpawnedSystem::start(None, None, &[]).await.unwrap();
    // Warm-up: connection buffers, channel and map capacities, statement caches reach their
    // working size.
    batch(&system, true).await;
    batch(&system, false).await;
    // Terminal orders are not a quiet system: the analytics service may still be folding.
    let targets = system.targets();
    let quiet = || invariants::wait_until_quiet(&targets, Duration::from_secs(120));

    // Two measured stretches of two batches each. A leak is linear in the orders and shows in
    // both; a buffer that reaches a new high-water mark (a burst a little larger than any
    // before) grows once, in one of them. So the smaller of the two is what is held against
    // the allowance.
    quiet().await.unwrap();
    let mut heap = vec![settled_heap_bytes().await];
    let rss_before = rss_mb();
    let mut accepted = Vec::new();
    for _ in 0..2 {
        accepted.push(batch(&system, false).await + batch(&system, false).await);
        quiet().await.unwrap();
        heap.push(settled_heap_bytes().await);
    }
    let rss_after = rss_mb();
    system.stop().await.unwrap();

    let stretches: Vec<(i64, i64)> = heap
        .windows(2)
        .zip(&accepted)
        .map(|(pair, &orders)| {
            let grown = pair[1] - pair[0];
            (grown, grown / orders.max(1) as i64)
        })
        .collect();
    println!(
        "heap after warm-up {:.2} MB, then {} over two stretches of {} orders; RSS {rss_before:.1} MB -> \
         {rss_after:.1} MB",
        heap[0] as f64 / 1e6,
        stretches
            .iter()
            .map(|(grown, per_order)| format!("{grown:+} B ({per_order:+} B per order)"))
            .collect::<Vec<_>>()
            .join(" and "),
        2 * BATCH,
    );
    let (grown, per_order) = stretches.iter().copied().min_by_key(|&(_, per_order)| per_order).unwrap();
    assert!(
        per_order <= ALLOWED_BYTES_PER_ORDER,
        "the heap grew in both stretches, by at least {grown} B ({per_order} B per order, at most \
         {ALLOWED_BYTES_PER_ORDER} allowed): something keeps per-order state"
    );
}

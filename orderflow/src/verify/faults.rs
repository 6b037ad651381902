//! The fault schedule: which faults, in which order, with which parameters — all drawn from one
//! seed, so that a run can be repeated exactly (`--seed`).
//!
//! Faults come from four families taken in turn, so that even a short schedule mixes them:
//! a service instance killed with SIGKILL (every instance in turn), a NATS node frozen with
//! SIGSTOP or killed (the stream leader or a follower), a gateway fault (outage, error burst,
//! slow answers, the simulator killed), and a duplicate-delivery storm. Within a family the order
//! is a seeded shuffle, reshuffled each time the family is used up. A fifth family, two NATS
//! nodes killed at once (no quorum), is drawn only when asked for (`--only quorum`).
//!
//! The containers backend (`--backend containers`, a running `deploy/compose.yaml` stack) adds
//! what processes alone cannot do: a real network partition of a NATS node (`docker network
//! disconnect`), PostgreSQL killed, and a rolling restart of every service instance under load.
//! Its default schedule takes every family it supports in turn, quorum loss included
//! ([`FaultFamily::CONTAINERS`]).

use std::collections::VecDeque;
use std::fmt;

use orderflow_events::Version;
use serde::Serialize;

/// Which NATS node a fault hits, resolved when it is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeChoice {
    /// The node leading the ORDERS stream at that moment.
    Leader,
    /// A node that does not lead it.
    Follower,
}

impl fmt::Display for NodeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Leader => "stream leader",
            Self::Follower => "follower",
        })
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL a service instance; start it again after `down_ms`.
    KillService {
        /// `inventory-2`.
        instance: String,
        /// Time dead.
        down_ms: u64,
    },
    /// SIGSTOP a NATS node; SIGCONT after `hold_ms`.
    PauseNats {
        /// Which node.
        node: NodeChoice,
        /// Time frozen.
        hold_ms: u64,
    },
    /// SIGKILL a NATS node; restart it on the same store after `down_ms`.
    KillNats {
        /// Which node.
        node: NodeChoice,
        /// Time dead.
        down_ms: u64,
    },
    /// The gateway answers every new charge 503.
    GatewayOutage {
        /// How long.
        hold_ms: u64,
    },
    /// The gateway answers this share of new charges 500.
    GatewayErrors {
        /// Share of failures.
        error_rate: f64,
        /// How long.
        hold_ms: u64,
    },
    /// The gateway answers every charge this late.
    GatewaySlow {
        /// Added latency.
        latency_ms: u64,
        /// How long.
        hold_ms: u64,
    },
    /// Cut a NATS node off the network (`docker network disconnect`): it runs on, unreachable
    /// by the other nodes and every client; reconnected after `hold_ms`. Containers only.
    PartitionNats {
        /// Which node.
        node: NodeChoice,
        /// Time cut off.
        hold_ms: u64,
    },
    /// SIGKILL PostgreSQL; start it again on the same volume after `down_ms`. Meanwhile one
    /// service instance is killed and started without a database: it must wait, live but not
    /// ready, and become ready once PostgreSQL is back — not exit and be restarted by docker.
    /// Containers only.
    KillDatabase {
        /// Time dead.
        down_ms: u64,
        /// The instance started while PostgreSQL is down.
        restart: String,
    },
    /// Every service instance, one at a time: stopped gracefully (SIGTERM, the stop grace
    /// period), started again and ready before the next goes, all under load. No client request
    /// may fail meanwhile, and every instance must drain within its grace period. Containers
    /// only (the processes backend runs one order service, with nothing in front of it).
    RollingRestart,
    /// SIGKILL the ORDERS stream leader and a follower: two of three nodes, so no stream has a
    /// quorum. After `down_ms` one of them is restarted (quorum back: the fault counts as healed
    /// and the probe runs on two nodes); the other once the probe is done.
    QuorumLoss {
        /// Time without a quorum.
        down_ms: u64,
    },
    /// Re-publish the last events of every stream: half with a fresh `Nats-Msg-Id` (what a
    /// duplicate after the dedup window looks like: JetStream stores it again and consumers get
    /// it again), half with their own (JetStream must drop them).
    DuplicateStorm {
        /// Events taken from the end of each stream.
        per_stream: usize,
    },
    /// One step of a rolling schema upgrade: every service instance, one at a time, drained
    /// (SIGTERM) and started again with the event versions of `stage` (an index into
    /// [`UPGRADE_STAGES`], 1 or more). Before v1 is retired, every consumer has handled the last
    /// v1 event.
    Upgrade {
        /// The stage the instances move to.
        stage: usize,
    },
}

/// A stage of a rolling schema upgrade (docs/EVENTS.md, "Migrating an event"): its name and
/// the versions every service publishes and accepts in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpgradeStage {
    /// What the stage is.
    pub name: &'static str,
    /// `events.publish`.
    pub publish: &'static [Version],
    /// `events.dual`.
    pub dual: bool,
    /// `events.consume`.
    pub consume: &'static [Version],
}

/// The stages of a rolling upgrade from v1 to v2, in order; a run of the `upgrade` family starts
/// in the first.
pub const UPGRADE_STAGES: [UpgradeStage; 5] = [
    UpgradeStage { name: "all v1", publish: &[Version::V1], dual: false, consume: &[Version::V1] },
    UpgradeStage {
        name: "consumers know v2",
        publish: &[Version::V1],
        dual: false,
        consume: &[Version::V1, Version::V2],
    },
    UpgradeStage {
        name: "producers dual-publish",
        publish: &[Version::V1, Version::V2],
        dual: true,
        consume: &[Version::V1, Version::V2],
    },
    UpgradeStage {
        name: "producers v2 only",
        publish: &[Version::V2],
        dual: false,
        consume: &[Version::V1, Version::V2],
    },
    UpgradeStage { name: "v1 retired", publish: &[Version::V2], dual: false, consume: &[Version::V2] },
];

impl UpgradeStage {
    /// The environment that sets this stage for a service's `section`
    /// (`ORDERFLOW__ORDER__EVENTS__PUBLISH=[v1, v2]`).
    pub fn env(&self, section: &str) -> [(String, String); 3] {
        let list = |versions: &[Version]| {
            format!("[{}]", versions.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
        };
        let key = |list_name: &str| format!("ORDERFLOW__{}__EVENTS__{list_name}", section.to_uppercase());
        [
            (key("PUBLISH"), list(self.publish)),
            (key("DUAL"), self.dual.to_string()),
            (key("CONSUME"), list(self.consume)),
        ]
    }
}

impl Fault {
    /// How long the fault lasts before it is healed (0 for a storm).
    pub fn hold_ms(&self) -> u64 {
        match self {
            Self::KillService { down_ms, .. }
            | Self::KillNats { down_ms, .. }
            | Self::KillDatabase { down_ms, .. }
            | Self::QuorumLoss { down_ms } => *down_ms,
            Self::PauseNats { hold_ms, .. }
            | Self::PartitionNats { hold_ms, .. }
            | Self::GatewayOutage { hold_ms }
            | Self::GatewayErrors { hold_ms, .. }
            | Self::GatewaySlow { hold_ms, .. } => *hold_ms,
            Self::DuplicateStorm { .. } | Self::Upgrade { .. } | Self::RollingRestart => 0,
        }
    }
}

impl Fault {
    /// The fault's kind, what the report's recovery summary groups by: `kill_service`,
    /// `pause_nats_leader`, `partition_nats_follower`, …
    pub fn kind(&self) -> String {
        let node = |prefix: &str, node: &NodeChoice| match node {
            NodeChoice::Leader => format!("{prefix}_leader"),
            NodeChoice::Follower => format!("{prefix}_follower"),
        };
        match self {
            Self::KillService { instance, .. } if instance == GATEWAY_INSTANCE => "kill_gateway".into(),
            Self::KillService { .. } => "kill_service".into(),
            Self::PauseNats { node: n, .. } => node("pause_nats", n),
            Self::KillNats { node: n, .. } => node("kill_nats", n),
            Self::PartitionNats { node: n, .. } => node("partition_nats", n),
            Self::KillDatabase { .. } => "kill_database".into(),
            Self::RollingRestart => "rolling_restart".into(),
            Self::GatewayOutage { .. } => "gateway_outage".into(),
            Self::GatewayErrors { .. } => "gateway_errors".into(),
            Self::GatewaySlow { .. } => "gateway_slow".into(),
            Self::QuorumLoss { .. } => "quorum_loss".into(),
            Self::DuplicateStorm { .. } => "duplicate_storm".into(),
            Self::Upgrade { .. } => "upgrade".into(),
        }
    }

    /// For a gateway fault: the `/admin/faults` patch that starts it and the one that ends it.
    pub fn gateway_patches(&self) -> Option<(serde_json::Value, serde_json::Value)> {
        use serde_json::json;
        match self {
            Self::GatewayOutage { .. } => Some((json!({"outage": true}), json!({"outage": false}))),
            Self::GatewayErrors { error_rate, .. } => {
                Some((json!({"error_rate": error_rate}), json!({"error_rate": 0.0})))
            }
            Self::GatewaySlow { latency_ms, .. } => {
                Some((json!({"latency_ms": latency_ms}), json!({"latency_ms": 0})))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KillService { instance, down_ms } => write!(f, "kill -9 {instance}, {down_ms} ms down"),
            Self::PauseNats { node, hold_ms } => write!(f, "SIGSTOP a NATS {node}, {hold_ms} ms frozen"),
            Self::KillNats { node, down_ms } => write!(f, "kill -9 a NATS {node}, {down_ms} ms down"),
            Self::PartitionNats { node, hold_ms } => {
                write!(f, "partition a NATS {node} off the network, {hold_ms} ms")
            }
            Self::KillDatabase { down_ms, restart } => {
                write!(f, "kill -9 PostgreSQL, {down_ms} ms down; {restart} started meanwhile")
            }
            Self::RollingRestart => f.write_str("rolling restart of every service instance"),
            Self::QuorumLoss { down_ms } => {
                write!(
                    f,
                    "kill -9 two NATS nodes (the stream leader and a follower), {down_ms} ms without quorum"
                )
            }
            Self::GatewayOutage { hold_ms } => write!(f, "gateway outage, {hold_ms} ms"),
            Self::GatewayErrors { error_rate, hold_ms } => {
                write!(f, "gateway errors {:.0} %, {hold_ms} ms", error_rate * 100.0)
            }
            Self::GatewaySlow { latency_ms, hold_ms } => {
                write!(f, "gateway slow ({latency_ms} ms per charge), {hold_ms} ms")
            }
            Self::DuplicateStorm { per_stream } => {
                write!(f, "duplicate storm, last {per_stream} events per stream")
            }
            Self::Upgrade { stage } => match UPGRADE_STAGES.get(*stage) {
                Some(s) => write!(f, "rolling restart into upgrade stage {}: {}", stage + 1, s.name),
                None => write!(f, "rolling restart into upgrade stage {} (unknown)", stage + 1),
            },
        }
    }
}

/// The gateway simulator's instance name.
pub const GATEWAY_INSTANCE: &str = "gateway-1";

/// A family of faults, for `orderflow verify --only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultFamily {
    /// `kill -9` of a service instance.
    Services,
    /// SIGSTOP or `kill -9` of a NATS node.
    Nats,
    /// A gateway outage, error burst or slow answers, or the simulator killed.
    Gateway,
    /// A duplicate-delivery storm.
    Duplicates,
    /// Two of the three NATS nodes killed at once: no quorum, no order completes until one is
    /// back. Drawn only when asked for.
    Quorum,
    /// A rolling schema upgrade from v1 to v2 through [`UPGRADE_STAGES`], every instance
    /// restarted one at a time between stages; the run starts in the first stage. Its four
    /// steps are taken in order, once. Drawn only when asked for; processes only.
    Upgrade,
    /// A NATS node (the stream leader or a follower) cut off the network. Containers only.
    Partition,
    /// PostgreSQL killed and restarted on its volume. Containers only.
    Database,
    /// Every service instance restarted gracefully, one at a time, under load, with no failed
    /// client request. Containers only.
    Rolling,
}

impl FaultFamily {
    /// Every family, in the order the schedule takes them.
    pub const ALL: [FaultFamily; 9] = [
        Self::Services,
        Self::Nats,
        Self::Partition,
        Self::Gateway,
        Self::Database,
        Self::Duplicates,
        Self::Quorum,
        Self::Rolling,
        Self::Upgrade,
    ];
    /// The families a schedule takes in turn when none is named: one fault at a time, each of
    /// which the system is built to ride through.
    pub const DEFAULT: [FaultFamily; 4] = [Self::Services, Self::Nats, Self::Gateway, Self::Duplicates];
    /// The containers backend's default: every family it supports (all but `upgrade`).
    pub const CONTAINERS: [FaultFamily; 8] = [
        Self::Services,
        Self::Nats,
        Self::Partition,
        Self::Gateway,
        Self::Database,
        Self::Duplicates,
        Self::Quorum,
        Self::Rolling,
    ];

    /// `only`, or the default of the backend (`containers` or processes) when it is empty.
    pub fn chosen(only: &[FaultFamily], containers: bool) -> Vec<FaultFamily> {
        match (only, containers) {
            ([], false) => Self::DEFAULT.to_vec(),
            ([], true) => Self::CONTAINERS.to_vec(),
            (only, _) => only.to_vec(),
        }
    }

    /// Whether the containers backend (`containers`) or the processes backend can inject it.
    pub fn supported_by(self, containers: bool) -> bool {
        match self {
            Self::Partition | Self::Database | Self::Rolling => containers,
            Self::Upgrade => !containers,
            _ => true,
        }
    }
}

/// Builds `count` faults from `seed`, taking the `only` families in turn
/// ([`FaultFamily::DEFAULT`] when `only` is empty). `instances` are the names of the service
/// instances that may be killed (the gateway simulator's among them for the gateway family);
/// `max_hold_ms` caps every hold (short runs use short faults).
pub fn plan(
    seed: u64,
    count: usize,
    only: &[FaultFamily],
    instances: &[String],
    max_hold_ms: u64,
) -> Vec<Fault> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let max_hold_ms = max_hold_ms.max(1_000);
    let hold = |rng: &mut fastrand::Rng, lo: u64, hi: u64| rng.u64(lo.min(max_hold_ms)..=hi.min(max_hold_ms));
    let chosen = if only.is_empty() { &FaultFamily::DEFAULT[..] } else { only };
    let services: Vec<String> = instances.iter().filter(|n| *n != GATEWAY_INSTANCE).cloned().collect();
    let mut families: Vec<Family> = FaultFamily::ALL
        .into_iter()
        .filter(|f| chosen.contains(f))
        .map(|f| match f {
            FaultFamily::Services => {
                Family::new(services.iter().map(|name| Draft::Kill(name.clone())).collect())
            }
            FaultFamily::Nats => Family::new(vec![
                Draft::PauseNats(NodeChoice::Leader),
                Draft::PauseNats(NodeChoice::Follower),
                Draft::KillNats(NodeChoice::Leader),
                Draft::KillNats(NodeChoice::Follower),
            ]),
            // The simulator killed too: its charge ledger and idempotency keys are durable, so
            // invariant 3 holds across its restarts, as a real gateway's would.
            FaultFamily::Gateway => Family::new(vec![
                Draft::GatewayOutage,
                Draft::GatewayErrors,
                Draft::GatewaySlow,
                Draft::Kill(GATEWAY_INSTANCE.to_owned()),
            ]),
            // A node cut off, then the node that leads: in that order, so that even a short
            // schedule with two partitions has both.
            FaultFamily::Partition => Family::cycle(vec![
                Draft::Partition(NodeChoice::Follower),
                Draft::Partition(NodeChoice::Leader),
            ]),
            FaultFamily::Database => Family::new(vec![Draft::KillDatabase]),
            FaultFamily::Rolling => Family::new(vec![Draft::Rolling]),
            FaultFamily::Duplicates => Family::new(vec![Draft::Storm]),
            FaultFamily::Quorum => Family::new(vec![Draft::QuorumLoss]),
            FaultFamily::Upgrade => Family::in_order((1..UPGRADE_STAGES.len()).map(Draft::Upgrade).collect()),
        })
        .collect();
    let mut out = Vec::with_capacity(count);
    let taken = families.len();
    for i in 0..count {
        let family = &mut families[i % taken];
        let Some(draft) = family.next(&mut rng) else { continue };
        if let Draft::Upgrade(stage) = draft {
            out.push(Fault::Upgrade { stage });
            continue;
        }
        out.push(match draft {
            Draft::Kill(instance) => Fault::KillService { instance, down_ms: hold(&mut rng, 500, 3_000) },
            Draft::PauseNats(node) => Fault::PauseNats { node, hold_ms: hold(&mut rng, 2_000, 8_000) },
            Draft::KillNats(node) => Fault::KillNats { node, down_ms: hold(&mut rng, 1_000, 6_000) },
            Draft::GatewayOutage => Fault::GatewayOutage { hold_ms: hold(&mut rng, 3_000, 15_000) },
            Draft::GatewayErrors => Fault::GatewayErrors {
                error_rate: f64::from(rng.u8(30..=100)) / 100.0,
                hold_ms: hold(&mut rng, 3_000, 10_000),
            },
            Draft::GatewaySlow => Fault::GatewaySlow {
                latency_ms: rng.u64(500..=4_000),
                hold_ms: hold(&mut rng, 3_000, 10_000),
            },
            Draft::Partition(node) => Fault::PartitionNats { node, hold_ms: hold(&mut rng, 2_000, 10_000) },
            Draft::KillDatabase => Fault::KillDatabase {
                down_ms: hold(&mut rng, 1_000, 8_000),
                restart: services.get(rng.usize(..services.len().max(1))).cloned().unwrap_or_default(),
            },
            Draft::Rolling => Fault::RollingRestart,
            Draft::Storm => Fault::DuplicateStorm { per_stream: rng.usize(50..=200) },
            Draft::QuorumLoss => Fault::QuorumLoss { down_ms: hold(&mut rng, 2_000, 10_000) },
            Draft::Upgrade(stage) => Fault::Upgrade { stage },
        });
    }
    out
}

#[derive(Clone)]
enum Draft {
    Kill(String),
    PauseNats(NodeChoice),
    KillNats(NodeChoice),
    GatewayOutage,
    GatewayErrors,
    GatewaySlow,
    Partition(NodeChoice),
    KillDatabase,
    Rolling,
    Storm,
    QuorumLoss,
    Upgrade(usize),
}

/// A family's drafts, dealt in a seeded shuffle that is redone each time the deck runs out — or
/// in order: once (a sequence) or again and again (a cycle).
struct Family {
    all: Vec<Draft>,
    deck: VecDeque<Draft>,
    order: Order,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    Shuffled,
    Once,
    Cycle,
}

impl Family {
    fn new(all: Vec<Draft>) -> Self {
        Self { all, deck: VecDeque::new(), order: Order::Shuffled }
    }

    fn in_order(all: Vec<Draft>) -> Self {
        Self { deck: all.clone().into(), all: Vec::new(), order: Order::Once }
    }

    fn cycle(all: Vec<Draft>) -> Self {
        Self { all, deck: VecDeque::new(), order: Order::Cycle }
    }

    fn next(&mut self, rng: &mut fastrand::Rng) -> Option<Draft> {
        if self.deck.is_empty() {
            match self.order {
                Order::Once => return None,
                Order::Cycle => self.deck = self.all.clone().into(),
                Order::Shuffled => {
                    let mut deck = self.all.clone();
                    rng.shuffle(&mut deck);
                    self.deck = deck.into();
                }
            }
        }
        self.deck.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances() -> Vec<String> {
        ["order-1", "inventory-1", "inventory-2", "payment-1", "payment-2"].map(String::from).to_vec()
    }

    #[test]
    fn an_upgrade_is_its_four_steps_in_order_once() {
        let faults = plan(3, 12, &[FaultFamily::Upgrade], &instances(), 15_000);
        assert_eq!(faults, (1..=4).map(|stage| Fault::Upgrade { stage }).collect::<Vec<_>>());
        assert_eq!(UPGRADE_STAGES[0].publish, [Version::V1]);
        assert_eq!(UPGRADE_STAGES[4].consume, [Version::V2]);
        let [publish, dual, consume] = UPGRADE_STAGES[2].env("order");
        assert_eq!(publish, ("ORDERFLOW__ORDER__EVENTS__PUBLISH".to_owned(), "[v1, v2]".to_owned()));
        assert_eq!(dual.1, "true");
        assert_eq!(consume.1, "[v1, v2]");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(plan(7, 40, &[], &instances(), 15_000), plan(7, 40, &[], &instances(), 15_000));
        assert_ne!(plan(7, 40, &[], &instances(), 15_000), plan(8, 40, &[], &instances(), 15_000));
    }

    #[test]
    fn families_take_turns_and_every_instance_is_killed() {
        let faults = plan(1, 40, &[], &instances(), 15_000);
        assert_eq!(faults.len(), 40);
        assert!(matches!(faults[0], Fault::KillService { .. }));
        assert!(matches!(faults[1], Fault::PauseNats { .. } | Fault::KillNats { .. }));
        assert!(
            matches!(
                faults[2],
                Fault::GatewayOutage { .. } | Fault::GatewayErrors { .. } | Fault::GatewaySlow { .. }
            ) || matches!(&faults[2], Fault::KillService { instance, .. } if instance == GATEWAY_INSTANCE)
        );
        assert!(matches!(faults[3], Fault::DuplicateStorm { .. }));
        for name in instances().into_iter().chain([GATEWAY_INSTANCE.to_owned()]) {
            assert!(
                faults.iter().any(|f| matches!(f, Fault::KillService { instance, .. } if *instance == name)),
                "{name} is never killed"
            );
        }
        for node in [NodeChoice::Leader, NodeChoice::Follower] {
            assert!(faults.iter().any(|f| matches!(f, Fault::PauseNats { node: n, .. } if *n == node)));
            assert!(faults.iter().any(|f| matches!(f, Fault::KillNats { node: n, .. } if *n == node)));
        }
    }

    #[test]
    fn only_the_chosen_families_are_drawn_and_still_in_turns() {
        let faults = plan(5, 12, &[FaultFamily::Nats, FaultFamily::Duplicates], &instances(), 15_000);
        assert_eq!(faults.len(), 12);
        for (i, f) in faults.iter().enumerate() {
            if i % 2 == 0 {
                assert!(matches!(f, Fault::PauseNats { .. } | Fault::KillNats { .. }), "{f}");
            } else {
                assert!(matches!(f, Fault::DuplicateStorm { .. }), "{f}");
            }
        }
        assert_eq!(
            plan(5, 40, &FaultFamily::DEFAULT, &instances(), 15_000),
            plan(5, 40, &[], &instances(), 15_000)
        );
        assert!(
            !plan(5, 40, &[], &instances(), 15_000).iter().any(|f| matches!(f, Fault::QuorumLoss { .. }))
        );
        assert!(
            plan(5, 3, &[FaultFamily::Quorum], &instances(), 15_000)
                .iter()
                .all(|f| matches!(f, Fault::QuorumLoss { .. }))
        );
    }

    #[test]
    fn the_containers_default_takes_every_family_it_supports_in_turn() {
        let mut names = instances();
        names.extend(["order-2", "analytics-1", GATEWAY_INSTANCE].map(String::from));
        let families = FaultFamily::chosen(&[], true);
        assert_eq!(families, FaultFamily::CONTAINERS);
        assert!(families.iter().all(|f| f.supported_by(true)));
        assert!(!FaultFamily::Upgrade.supported_by(true));
        for f in [FaultFamily::Partition, FaultFamily::Database, FaultFamily::Rolling] {
            assert!(!f.supported_by(false), "{f:?}");
        }
        assert_eq!(FaultFamily::chosen(&[], false), FaultFamily::DEFAULT);
        assert_eq!(FaultFamily::chosen(&[FaultFamily::Quorum], true), [FaultFamily::Quorum]);

        let faults = plan(11, 16, &families, &names, 15_000);
        assert_eq!(faults.len(), 16);
        // One of each family in the first eight, in the families' order.
        assert!(matches!(faults[0], Fault::KillService { ref instance, .. } if instance != GATEWAY_INSTANCE));
        assert!(matches!(faults[1], Fault::PauseNats { .. } | Fault::KillNats { .. }));
        assert!(matches!(faults[2], Fault::PartitionNats { .. }));
        assert!(matches!(faults[4], Fault::KillDatabase { .. }));
        assert!(matches!(faults[5], Fault::DuplicateStorm { .. }));
        assert!(matches!(faults[6], Fault::QuorumLoss { .. }));
        assert_eq!(faults[7], Fault::RollingRestart);
        // A node cut off first, then the stream leader: eleven faults are enough for both.
        assert!(matches!(faults[2], Fault::PartitionNats { node: NodeChoice::Follower, .. }));
        assert!(matches!(faults[10], Fault::PartitionNats { node: NodeChoice::Leader, .. }));
        assert_eq!(faults[7].kind(), "rolling_restart");
        assert_eq!(faults[7].hold_ms(), 0);
    }

    #[test]
    fn holds_respect_the_cap() {
        for f in plan(3, 40, &[], &instances(), 2_000) {
            assert!(f.hold_ms() <= 2_000, "{f}");
        }
    }
}

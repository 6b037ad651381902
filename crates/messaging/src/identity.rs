//! NATS identities: one per service and one for the operator, each allowed exactly what its
//! role needs, derived from the same [`Topology`] that provisioning uses so the two cannot
//! disagree.
//!
//! - A **service** identity (`order`, `inventory`, `payment`, `analytics`) may publish its own
//!   events (every version and lane), the dead letters of what its own consumers receive, the
//!   JetStream API calls of its own consumers (info and pull, never create, update or delete),
//!   the acks of its own consumers, the info (backlog) of the consumers of its own events, stream
//!   info (for the stream-fill gauges) and the direct reads
//!   of the streams it consumes (the max-deliveries consumer copies the original to the DLQ). It
//!   may subscribe only to its own reply inbox (`_INBOX_<service>.>`, so no service reads another
//!   one's pulled messages or replies), its NATS micro-service subjects and its request-reply
//!   endpoints. Everything else — another service's events, stream and consumer management, the
//!   DLQ's contents — the server refuses.
//! - The **admin** identity may do everything: it provisions streams and consumers
//!   (`orderflow nats provision`, `orderflow up`), and `orderflow dlq`, `verify`, `load` and
//!   `analytics rebuild` run under it.
//!
//! The mechanism is nkeys in the server configuration ([`auth_conf`]): an ed25519 key pair per
//! identity, the server holding only the public keys. There is no shared secret on the server
//! side, nothing else to run (operator/account JWTs need a resolver and `nsc`), and the whole
//! policy is one reviewable file. Rotating a key is writing a new one and reloading the server
//! (`nats-server --signal reload`), which keeps every other connection.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use orderflow_events::routing::{ANALYTICS, producer, service_name};
use orderflow_events::{EventKind, MessageType};

use crate::topology::{ConsumerSpec, Topology};

/// The operator's identity: provisioning, the DLQ tools, verification.
pub const ADMIN: &str = "admin";

/// The services that connect with identities of their own (section names).
pub const SERVICES: [&str; 4] = ["order", "inventory", "payment", ANALYTICS];

/// Every identity: the services', then the admin's.
pub const ALL: [&str; 5] = ["order", "inventory", "payment", ANALYTICS, ADMIN];

/// The subject of the publisher's liveness probe (see `publish.rs`), which every identity sends.
const PROBE: &str = "_ORDERFLOW.PROBE.>";

/// The prefix of `identity`'s reply subjects: `_INBOX_order`. Each identity may subscribe only to
/// its own, so pulled messages and replies meant for one service reach no other.
pub fn inbox_prefix(identity: &str) -> String {
    format!("_INBOX_{identity}")
}

/// What an identity may publish and subscribe to (NATS subject patterns). `None` means anything
/// (the admin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to; `None`: any.
    pub publish: Option<Vec<String>>,
    /// Subjects it may subscribe to; `None`: any.
    pub subscribe: Option<Vec<String>>,
}

impl Topology {
    /// Every stream and every consumer of a whole deployment: the saga's consumers (both lanes),
    /// the analytics service's (both lanes of every event), and each service's max-deliveries
    /// consumer watching exactly its own. What the admin identity provisions when services may
    /// not provision themselves.
    pub fn deployment(replicas: usize) -> Self {
        let mut topology = Self::orderflow(replicas);
        topology.consumers.extend(EventKind::ALL.iter().flat_map(|&kind| {
            [ConsumerSpec::for_lane(ANALYTICS, kind, false), ConsumerSpec::for_lane(ANALYTICS, kind, true)]
        }));
        let watchers: Vec<ConsumerSpec> = SERVICES
            .iter()
            .filter_map(|&service| {
                let watched: Vec<(&str, &str)> = topology
                    .consumers
                    .iter()
                    .filter(|c| c.service == service)
                    .map(|c| (c.stream.as_str(), c.durable.as_str()))
                    .collect();
                (!watched.is_empty()).then(|| ConsumerSpec::for_max_deliveries(service, watched))
            })
            .collect();
        topology.consumers.extend(watchers);
        topology
    }

    /// Only the consumers of `services` (section names): a deployment that does not run a
    /// service must not keep consumers for it, whose backlog would only grow.
    pub fn of_services(mut self, services: &[&str]) -> Self {
        self.consumers.retain(|c| services.contains(&c.service.as_str()));
        self
    }
}

/// What `identity` may do on a deployment provisioned as `topology` (see the module docs).
pub fn permissions(identity: &str, topology: &Topology) -> Permissions {
    if identity == ADMIN {
        return Permissions { publish: None, subscribe: None };
    }
    let mut publish = BTreeSet::new();
    // Its own events, every version, both lanes.
    for message in MessageType::ALL.iter().filter(|m| producer(m.kind) == identity) {
        publish.insert(message.subject().to_owned());
        publish.insert(message.express_subject().to_owned());
    }
    for c in topology.consumers.iter().filter(|c| c.service == identity) {
        let (stream, durable) = (&c.stream, &c.durable);
        publish.insert(format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"));
        publish.insert(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"));
        publish.insert(format!("$JS.ACK.{stream}.{durable}.>"));
        if c.event.is_some() {
            // The dead letters of what it receives, and the originals its max-deliveries
            // consumer copies there.
            for subject in &c.filter_subjects {
                publish.insert(format!("dlq.{subject}"));
            }
            publish.insert(format!("$JS.API.STREAM.MSG.GET.{stream}"));
        }
    }
    // The backlog of its events' consumers (metadata, no messages): the order service sheds
    // load on inventory's `orders.created` backlog.
    for c in topology.consumers.iter().filter(|c| c.event.is_some_and(|(kind, _)| producer(kind) == identity))
    {
        publish.insert(format!("$JS.API.CONSUMER.INFO.{}.{}", c.stream, c.durable));
    }
    for stream in &topology.streams {
        publish.insert(format!("$JS.API.STREAM.INFO.{}", stream.name));
    }
    publish.insert(PROBE.to_owned());

    let name = service_name(identity);
    let mut subscribe = vec![format!("{}.>", inbox_prefix(identity))];
    // The NATS micro service (`nats micro ls|info|stats`): `$SRV.<verb>`, `$SRV.<verb>.<name>`,
    // `$SRV.<verb>.<name>.<id>`; and its endpoints, `orderflow.<section>.<endpoint>`.
    for verb in ["PING", "INFO", "STATS"] {
        subscribe.push(format!("$SRV.{verb}"));
        subscribe.push(format!("$SRV.{verb}.{name}"));
        subscribe.push(format!("$SRV.{verb}.{name}.*"));
    }
    subscribe.push(format!("orderflow.{identity}.>"));
    Permissions { publish: Some(publish.into_iter().collect()), subscribe: Some(subscribe) }
}

/// One identity's key: the public key the server knows it by and the seed it signs with.
#[derive(Clone)]
pub struct IdentityKey {
    /// `order`, …, `admin`.
    pub identity: String,
    /// The user's public nkey (`U…`).
    pub public_key: String,
    seed: String,
}

// By hand: the seed is a secret.
impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKey")
            .field("identity", &self.identity)
            .field("public_key", &self.public_key)
            .field("seed", &"[redacted]")
            .finish()
    }
}

/// Why credentials could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A seed file holds no valid user nkey seed.
    #[error("{path}: not a NATS user nkey seed ({reason})")]
    BadSeed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl IdentityKey {
    /// A new random key for `identity`.
    pub fn generate(identity: &str) -> Self {
        let pair = nkeys::KeyPair::new_user();
        Self {
            identity: identity.to_owned(),
            public_key: pair.public_key(),
            // A freshly generated pair always has its seed.
            seed: pair.seed().unwrap_or_default(),
        }
    }

    /// Reads the seed file `path` (`SU…`), for `identity`.
    pub fn read(identity: &str, path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CredentialsError::Io { path: path.to_path_buf(), source })?;
        let seed = text.trim();
        let pair = nkeys::KeyPair::from_seed(seed)
            .map_err(|e| CredentialsError::BadSeed { path: path.to_path_buf(), reason: e.to_string() })?;
        if !seed.starts_with("SU") {
            return Err(CredentialsError::BadSeed {
                path: path.to_path_buf(),
                reason: "a user seed starts with SU".to_owned(),
            });
        }
        Ok(Self { identity: identity.to_owned(), public_key: pair.public_key(), seed: seed.to_owned() })
    }

    /// Writes the seed to `path`, readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), CredentialsError> {
        write_private(path, &format!("{}\n", self.seed))
    }
}

/// Writes `contents` to `path` with mode 0600 (created that way, never readable by others).
pub fn write_private(path: &Path, contents: &str) -> Result<(), CredentialsError> {
    use std::io::Write as _;
    let io = |source| CredentialsError::Io { path: path.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // An existing file keeps its old mode through `open`: set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    file.write_all(contents.as_bytes()).map_err(io)
}

/// The seed file of `identity` in a credentials directory: `<dir>/<identity>.nk`.
pub fn seed_file(dir: &Path, identity: &str) -> PathBuf {
    dir.join(format!("{identity}.nk"))
}

/// The server-side authorization file in a credentials directory: `<dir>/auth.conf`.
pub fn auth_conf_file(dir: &Path) -> PathBuf {
    dir.join("auth.conf")
}

/// A credentials directory: every identity's seed ([`seed_file`]) and the server's
/// [`auth_conf`] ([`auth_conf_file`]). Existing seeds are kept (so running it again changes
/// nothing), missing ones are generated, and `auth.conf` is written from the keys and
/// `topology`. `rotate` names identities to give new keys. Returns the keys.
pub fn ensure_credentials(
    dir: &Path,
    topology: &Topology,
    rotate: &[&str],
) -> Result<Vec<IdentityKey>, CredentialsError> {
    std::fs::create_dir_all(dir)
        .map_err(|source| CredentialsError::Io { path: dir.to_path_buf(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|source| CredentialsError::Io { path: dir.to_path_buf(), source })?;
    }
    let mut keys = Vec::with_capacity(ALL.len());
    for identity in ALL {
        let path = seed_file(dir, identity);
        let key = if path.exists() && !rotate.contains(&identity) {
            IdentityKey::read(identity, &path)?
        } else {
            let key = IdentityKey::generate(identity);
            key.write(&path)?;
            key
        };
        keys.push(key);
    }
    write_private(&auth_conf_file(dir), &auth_conf(&keys, topology))?;
    Ok(keys)
}

/// The nats-server `authorization` block for `keys`: one nkey user per identity with
/// [`permissions`]. Include it in a server configuration (`include "auth.conf"`); a server
/// with it refuses clients without one of these keys.
pub fn auth_conf(keys: &[IdentityKey], topology: &Topology) -> String {
    let mut out = String::from(
        "# Generated by orderflow (`orderflow nats credentials`): one nkey user per identity,\n\
         # permissions derived from the JetStream topology. Regenerate rather than edit.\n\
         authorization {\n  users = [\n",
    );
    let list = |items: &[String]| items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    for key in keys {
        let p = permissions(&key.identity, topology);
        let _ = writeln!(out, "    # {}", key.identity);
        let _ = write!(out, "    {{ nkey: \"{}\"", key.public_key);
        if let (Some(publish), Some(subscribe)) = (&p.publish, &p.subscribe) {
            let _ = write!(
                out,
                ", permissions: {{\n        publish: {{ allow: [{}] }}\n        subscribe: {{ allow: [{}] }}\n        \
                 allow_responses: true\n      }}",
                list(publish),
                list(subscribe)
            );
        }
        out.push_str(" }\n");
    }
    out.push_str("  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn allowed(p: &Option<Vec<String>>, subject: &str) -> bool {
        p.as_ref().is_none_or(|list| list.iter().any(|pattern| matches(pattern, subject)))
    }

    /// NATS subject matching: `*` one token, `>` the rest.
    fn matches(pattern: &str, subject: &str) -> bool {
        let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn a_service_publishes_its_own_events_only() {
        let t = Topology::deployment(1);
        let order = permissions("order", &t);
        for s in
            ["orders.created.v1", "orders.created.v2.express", "orders.confirmed.v1", "orders.cancelled.v2"]
        {
            assert!(allowed(&order.publish, s), "{s}");
        }
        for s in
            ["payments.completed.v1", "inventory.reserved.v1", "orders.created.v9", "dlq.orders.created.v1"]
        {
            assert!(!allowed(&order.publish, s), "{s}");
        }
        let payment = permissions("payment", &t);
        assert!(allowed(&payment.publish, "payments.completed.v1"));
        assert!(!allowed(&payment.publish, "orders.confirmed.v1"));
        assert!(allowed(&payment.publish, "dlq.inventory.reserved.v1.express"));
        let analytics = permissions("analytics", &t);
        assert!(MessageType::ALL.iter().all(|m| !allowed(&analytics.publish, m.subject())));
    }

    #[test]
    fn a_service_drives_its_own_consumers_and_manages_nothing() {
        let t = Topology::deployment(1);
        let inventory = permissions("inventory", &t);
        for s in [
            "$JS.API.CONSUMER.MSG.NEXT.ORDERS.inventory-orders-created",
            "$JS.API.CONSUMER.INFO.PAYMENTS.inventory-payments-failed-express",
            "$JS.ACK.ORDERS.inventory-orders-created.1.2.3.4.5",
            "$JS.API.CONSUMER.MSG.NEXT.ADVISORIES.inventory-max-deliveries",
            "$JS.API.STREAM.INFO.DLQ",
            "$JS.API.STREAM.MSG.GET.ORDERS",
        ] {
            assert!(allowed(&inventory.publish, s), "{s}");
        }
        for s in [
            "$JS.API.CONSUMER.MSG.NEXT.INVENTORY.payment-inventory-reserved",
            "$JS.ACK.INVENTORY.payment-inventory-reserved.1.2.3.4.5",
            "$JS.API.STREAM.DELETE.ORDERS",
            "$JS.API.STREAM.PURGE.DLQ",
            "$JS.API.STREAM.CREATE.X",
            "$JS.API.CONSUMER.CREATE.ORDERS.inventory-orders-created",
            "$JS.API.CONSUMER.DELETE.ORDERS.inventory-orders-created",
            "$JS.API.CONSUMER.MSG.NEXT.DLQ.x",
            "$JS.API.STREAM.MSG.GET.DLQ",
        ] {
            assert!(!allowed(&inventory.publish, s), "{s}");
        }
        // Its events' consumers' backlog, read-only.
        assert!(allowed(&inventory.publish, "$JS.API.CONSUMER.INFO.INVENTORY.payment-inventory-reserved"));
        let order = permissions("order", &t);
        assert!(allowed(&order.publish, "$JS.API.CONSUMER.INFO.ORDERS.inventory-orders-created-express"));
        assert!(!allowed(&order.publish, "$JS.API.CONSUMER.MSG.NEXT.ORDERS.inventory-orders-created"));
        assert!(allowed(&inventory.subscribe, "_INBOX_inventory.abc.1"));
        assert!(allowed(&inventory.subscribe, "orderflow.inventory.stock"));
        assert!(allowed(&inventory.subscribe, "$SRV.INFO.inventory-service.xyz"));
        for s in ["_INBOX.abc", "_INBOX_payment.abc", "orders.created.v1", "dlq.>", "$JS.EVENT.ADVISORY.>"] {
            assert!(!allowed(&inventory.subscribe, s), "{s}");
        }
    }

    #[test]
    fn the_deployment_has_every_consumer_a_service_runs() {
        let t = Topology::deployment(3);
        let names: BTreeSet<&str> = t.consumers.iter().map(|c| c.durable.as_str()).collect();
        for name in [
            "inventory-orders-created",
            "order-payments-failed-express",
            "analytics-orders-created",
            "analytics-payments-failed-express",
            "order-max-deliveries",
            "analytics-max-deliveries",
        ] {
            assert!(names.contains(name), "{name}");
        }
        assert_eq!(names.len(), t.consumers.len(), "no consumer twice");
        let analytics_watch = t.consumers.iter().find(|c| c.durable == "analytics-max-deliveries").unwrap();
        assert_eq!(analytics_watch.filter_subjects.len(), 2 * EventKind::ALL.len());
    }

    #[test]
    fn the_admin_may_do_anything_and_the_server_config_lists_every_identity() {
        let t = Topology::deployment(1);
        assert_eq!(permissions(ADMIN, &t), Permissions { publish: None, subscribe: None });
        let keys: Vec<_> = ALL.iter().map(|i| IdentityKey::generate(i)).collect();
        let conf = auth_conf(&keys, &t);
        for key in &keys {
            assert!(conf.contains(&key.public_key));
            assert!(!conf.contains(&key.seed), "no seed in the server's file");
            assert!(key.public_key.starts_with('U') && key.seed.starts_with("SU"));
        }
        assert!(!format!("{:?}", keys[0]).contains(&keys[0].seed));
        assert_eq!(conf.matches("allow_responses").count(), SERVICES.len());
    }

    #[test]
    fn credentials_are_kept_across_runs_rotated_on_request_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let t = Topology::deployment(1);
        let first = ensure_credentials(dir.path(), &t, &[]).unwrap();
        let again = ensure_credentials(dir.path(), &t, &[]).unwrap();
        assert_eq!(
            first.iter().map(|k| &k.public_key).collect::<Vec<_>>(),
            again.iter().map(|k| &k.public_key).collect::<Vec<_>>()
        );
        let rotated = ensure_credentials(dir.path(), &t, &["payment"]).unwrap();
        for (a, b) in first.iter().zip(&rotated) {
            assert_eq!(a.public_key == b.public_key, a.identity != "payment", "{}", a.identity);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(seed_file(dir.path(), "order")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "seed readable by others: {mode:o}");
        }
        std::fs::write(seed_file(dir.path(), "order"), "not a seed").unwrap();
        assert!(matches!(ensure_credentials(dir.path(), &t, &[]), Err(CredentialsError::BadSeed { .. })));
    }
}

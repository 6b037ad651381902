//! Which versions of each event a service publishes and accepts: the knob of a schema migration
//! (docs/EVENTS.md has the playbook).
//!
//! Both lists name versions (`["v1", "v2"]`) and apply to every kind: a kind publishes (or
//! accepts) those of its versions that are listed, and a kind with none of them listed — one
//! that never needed a v2 — uses its newest version below the highest one listed. So `["v2"]`
//! means "v2 where there is one, else v1", and `["v1"]` is the contract before v2 existed.
//!
//! With more than one version listed, each event goes out once, in the oldest listed version
//! that can carry it (v1 for an order without a currency, v2 for a `currency_mismatch`) — unless
//! `dual` is set, and then in every listed version that can carry it (dual publishing, for a
//! migration whose readers move from one version to the other).

use std::fmt;
use std::sync::Arc;

use orderflow_events::{Envelope, EventKind, Version, Versioned};
use serde::{Deserialize, Serialize};

use crate::publish::OutgoingMessage;

/// The versions a service publishes and accepts (`[<service>.events]` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventVersions {
    /// Versions the service may publish. The default, v1 and v2, sends each event in v1 when v1
    /// can carry it — every v1 reader keeps working, at no extra cost — and in v2 when only v2
    /// can (a currency, `currency_mismatch`).
    pub publish: Vec<Version>,
    /// Publish each event in every listed version that can carry it, not just the oldest (dual
    /// publishing: the two messages share the event's id, and consumers count them once).
    pub dual: bool,
    /// Versions the service's consumers accept (and subscribe to); anything else that reaches
    /// them is dead-lettered as `unknown_type`. The default accepts every version this build
    /// knows.
    pub consume: Vec<Version>,
}

impl Default for EventVersions {
    fn default() -> Self {
        Self { publish: Version::ALL.to_vec(), dual: false, consume: Version::ALL.to_vec() }
    }
}

/// A version list that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("events.{list} must name at least one version (v1, v2)")]
pub struct EmptyVersions {
    list: &'static str,
}

impl EventVersions {
    /// Checks that both lists name a version.
    ///
    /// # Errors
    /// [`EmptyVersions`].
    pub fn validate(&self) -> Result<(), EmptyVersions> {
        if self.publish.is_empty() {
            return Err(EmptyVersions { list: "publish" });
        }
        if self.consume.is_empty() {
            return Err(EmptyVersions { list: "consume" });
        }
        Ok(())
    }

    /// The versions of `kind` published, oldest first.
    #[must_use]
    pub fn publish_of(&self, kind: EventKind) -> Vec<Version> {
        resolve(&self.publish, kind)
    }

    /// The versions of `kind` accepted, oldest first.
    #[must_use]
    pub fn consume_of(&self, kind: EventKind) -> Vec<Version> {
        resolve(&self.consume, kind)
    }

    /// Whether `version` of `kind` is published.
    #[must_use]
    pub fn publishes(&self, kind: EventKind, version: Version) -> bool {
        self.publish_of(kind).contains(&version)
    }

    /// The messages of `envelope`, on the standard or the express lane: one, in the oldest
    /// published version of its kind that can carry it, or with `dual` one in every such
    /// version.
    ///
    /// # Errors
    /// [`Unpublishable`] when none of those versions can carry the event (a
    /// `currency_mismatch` with only v1 published), or serialization failed.
    pub fn messages<T: Versioned>(
        &self,
        envelope: &Envelope<T>,
        express: bool,
    ) -> Result<Vec<OutgoingMessage>, Unpublishable> {
        let versions = self.publish_of(T::KIND);
        let mut out = Vec::with_capacity(versions.len());
        for version in &versions {
            let Some(payload) = T::downcast(envelope, *version).map_err(Unpublishable::Serialize)? else {
                continue;
            };
            out.push(OutgoingMessage::from_payload(T::KIND.at(*version), envelope, payload.into(), express));
            if !self.dual {
                break;
            }
        }
        if out.is_empty() {
            return Err(Unpublishable::NoVersion { type_name: T::message_type().type_name(), versions });
        }
        Ok(out)
    }
}

/// Why an event cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum Unpublishable {
    /// None of the published versions can say what the event says.
    #[error(
        "{type_name} cannot be published in {}: those versions cannot carry it; add its version to events.publish",
        Listed(.versions)
    )]
    NoVersion {
        /// The type of the event.
        type_name: &'static str,
        /// The versions published.
        versions: Vec<Version>,
    },
    /// Serializing failed.
    #[error("serializing the event: {0}")]
    Serialize(#[source] serde_json::Error),
}

struct Listed<'a>(&'a [Version]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|v| v.as_str()).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

fn resolve(listed: &[Version], kind: EventKind) -> Vec<Version> {
    let known = kind.versions();
    let picked: Vec<Version> = known.iter().copied().filter(|v| listed.contains(v)).collect();
    if !picked.is_empty() {
        return picked;
    }
    let Some(highest) = listed.iter().max() else { return Vec::new() };
    known.iter().rev().copied().find(|v| v <= highest).into_iter().collect()
}

/// The versions shared by a service's runtimes.
pub type SharedVersions = Arc<EventVersions>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn versions(publish: &[Version]) -> EventVersions {
        EventVersions { publish: publish.to_vec(), dual: false, consume: publish.to_vec() }
    }

    #[test]
    fn a_kind_without_a_listed_version_uses_its_newest_below_the_highest_listed() {
        let v2_only = versions(&[Version::V2]);
        assert_eq!(v2_only.publish_of(EventKind::OrdersCreated), [Version::V2]);
        assert_eq!(v2_only.publish_of(EventKind::PaymentsCompleted), [Version::V1]);
        let dual = versions(&[Version::V1, Version::V2]);
        assert_eq!(dual.publish_of(EventKind::InventoryRejected), [Version::V1, Version::V2]);
        assert_eq!(dual.consume_of(EventKind::InventoryReserved), [Version::V1]);
        let v1 = versions(&[Version::V1]);
        assert_eq!(v1.publish_of(EventKind::OrdersCancelled), [Version::V1]);
    }

    #[test]
    fn empty_lists_are_refused() {
        assert!(versions(&[]).validate().is_err());
        assert!(EventVersions::default().validate().is_ok());
    }

    #[test]
    fn versions_are_configured_by_name() {
        let parsed: EventVersions =
            serde_json::from_str(r#"{"publish": ["v2"], "consume": ["v1", "v2"]}"#).unwrap();
        assert_eq!(parsed.publish, [Version::V2]);
        assert!(serde_json::from_str::<EventVersions>(r#"{"publish": ["v9"]}"#).is_err());
    }
}

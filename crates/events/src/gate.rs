//! The schema gate behind `cargo xtask schemas --check`: the schemas generated from the Rust
//! types against a directory of committed ones (the work tree's `schemas/`, or a git
//! revision's copy), each difference classified by [`crate::compat`].
//!
//! A breaking change within a version fails with "make a new version"; a compatible one fails
//! the drift check only until the files are regenerated; a schema that is new is a new version
//! and compatible; one that is gone breaks its consumers.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use serde_json::Value;

use crate::compat::{Change, classify};
use crate::kinds::MessageType;
use crate::schema::envelope_schema;

/// What the gate found for one schema file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Generated but not in the directory: a new version (compatible).
    New,
    /// In the directory but no longer generated: its consumers lose it (breaking).
    Removed,
    /// Differs; the field-level changes (empty when only formatting or key order differ).
    Changed(Vec<Change>),
    /// The committed file could not be read or is not JSON.
    Unreadable(String),
}

/// One schema file's finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The subject (`orders.created.v1`), i.e. the file name without `.json`.
    pub subject: String,
    /// What differs.
    pub verdict: Verdict,
}

impl Finding {
    /// Whether this finding breaks a version.
    #[must_use]
    pub fn is_breaking(&self) -> bool {
        match &self.verdict {
            Verdict::New => false,
            Verdict::Removed | Verdict::Unreadable(_) => true,
            Verdict::Changed(changes) => changes.iter().any(Change::is_breaking),
        }
    }

    /// One line per change, e.g. `orders.created.v1: /data/items/quantity: type changed from
    /// integer to string — breaking within a version: make a new version (orders.created.v2)`.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        let subject = &self.subject;
        match &self.verdict {
            Verdict::New => vec![format!("{subject}: new schema (a new version) — compatible")],
            Verdict::Removed => vec![format!(
                "{subject}: schema removed — breaking: its consumers lose it; retire a version only \
                 after its migration (docs/EVENTS.md)"
            )],
            Verdict::Unreadable(error) => vec![format!("{subject}: committed schema unreadable: {error}")],
            Verdict::Changed(changes) if changes.is_empty() => {
                vec![format!("{subject}: formatting only — compatible")]
            }
            Verdict::Changed(changes) => changes
                .iter()
                .map(|change| {
                    if change.is_breaking() {
                        format!(
                            "{subject}: {change} — breaking within a version: make a new version ({})",
                            next_version(subject)
                        )
                    } else {
                        format!("{subject}: {change} — compatible")
                    }
                })
                .collect(),
        }
    }
}

/// `orders.created.v2` for `orders.created.v1`; the subject with `.vNEXT` when it has no
/// version suffix.
#[must_use]
pub fn next_version(subject: &str) -> String {
    match subject.rsplit_once(".v").and_then(|(base, n)| Some((base, n.parse::<u32>().ok()?))) {
        Some((base, n)) => format!("{base}.v{}", n.saturating_add(1)),
        None => format!("{subject}.vNEXT"),
    }
}

/// Every generated schema, one per message type (every version of every event):
/// `(subject, schema)`, in [`MessageType::ALL`]'s order.
#[must_use]
pub fn generated_schemas() -> Vec<(String, Value)> {
    MessageType::ALL
        .into_iter()
        .map(|message| (message.subject().to_owned(), envelope_schema(message)))
        .collect()
}

/// Compares the generated schemas with the `*.json` files in `dir` (committed or a base
/// revision's). Files that match exactly are not reported. A missing directory means every
/// schema is new.
#[must_use]
pub fn compare_with_dir(dir: &Path) -> Vec<Finding> {
    let generated = generated_schemas();
    compare(&generated, |name| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Some(Ok(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
    })
    .into_iter()
    .chain(removed(dir, &generated))
    .collect()
}

/// The core of [`compare_with_dir`]: `read(file name)` is `None` for a file that does not exist.
fn compare(
    generated: &[(String, Value)],
    mut read: impl FnMut(&str) -> Option<Result<String, String>>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (subject, schema) in generated {
        let name = format!("{subject}.json");
        let verdict = match read(&name) {
            None => Some(Verdict::New),
            Some(Err(error)) => Some(Verdict::Unreadable(error)),
            Some(Ok(text)) if text == format!("{schema:#}\n") => None,
            Some(Ok(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(old) => Some(Verdict::Changed(classify(&old, schema))),
                Err(e) => Some(Verdict::Unreadable(format!("not JSON: {e}"))),
            },
        };
        if let Some(verdict) = verdict {
            findings.push(Finding { subject: subject.clone(), verdict });
        }
    }
    findings
}

fn removed(dir: &Path, generated: &[(String, Value)]) -> Vec<Finding> {
    let expected: BTreeSet<String> = generated.iter().map(|(subject, _)| format!("{subject}.json")).collect();
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json") && !expected.contains(name))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| Finding { subject: name.trim_end_matches(".json").to_owned(), verdict: Verdict::Removed })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::compat::Rule;

    fn generated_with(subject: &str, schema: Value) -> Vec<(String, Value)> {
        vec![(subject.to_owned(), schema)]
    }

    #[test]
    fn next_version_bumps_the_suffix() {
        assert_eq!(next_version("orders.created.v1"), "orders.created.v2");
        assert_eq!(next_version("inventory.rejected.v9"), "inventory.rejected.v10");
        assert_eq!(next_version("odd"), "odd.vNEXT");
    }

    #[test]
    fn a_breaking_change_names_the_file_the_field_and_the_next_version() {
        let old = json!({"type": "object", "properties": {"quantity": {"type": "integer"}}});
        let new = json!({"type": "object", "properties": {"quantity": {"type": "string"}}});
        let findings = compare(&generated_with("orders.created.v1", new), |_| Some(Ok(format!("{old:#}\n"))));
        assert_eq!(findings.len(), 1);
        assert!(findings[0].is_breaking());
        assert_eq!(
            findings[0].lines(),
            ["orders.created.v1: /quantity: type changed from integer to string — breaking within a \
              version: make a new version (orders.created.v2)"]
        );
    }

    #[test]
    fn a_new_schema_is_a_compatible_new_version_and_an_identical_one_is_not_reported() {
        let schema = json!({"type": "object"});
        let new = compare(&generated_with("orders.created.v2", schema.clone()), |_| None);
        assert_eq!(new, [Finding { subject: "orders.created.v2".into(), verdict: Verdict::New }]);
        assert!(!new[0].is_breaking());
        let same = compare(&generated_with("orders.created.v1", schema.clone()), |_| {
            Some(Ok(format!("{schema:#}\n")))
        });
        assert!(same.is_empty());
    }

    #[test]
    fn reformatted_json_is_drift_without_changes() {
        let schema = json!({"type": "object"});
        let findings =
            compare(&generated_with("orders.created.v1", schema.clone()), |_| Some(Ok(schema.to_string())));
        assert_eq!(findings[0].verdict, Verdict::Changed(vec![]));
        assert!(!findings[0].is_breaking());
    }

    #[test]
    fn a_compatible_change_says_compatible() {
        let old = json!({"type": "object", "properties": {"reason": {"enum": ["a"]}}});
        let new = json!({"type": "object", "properties": {"reason": {"enum": ["a", "b"]}}});
        let findings = compare(&generated_with("inventory.rejected.v1", new), |_| Some(Ok(old.to_string())));
        let Verdict::Changed(changes) = &findings[0].verdict else { panic!("{findings:?}") };
        assert_eq!(changes[0].rule, Rule::EnumWidened);
        assert!(findings[0].lines()[0].ends_with("— compatible"));
    }

    #[test]
    fn the_committed_schemas_have_no_changes_against_themselves() {
        for (subject, schema) in generated_schemas() {
            assert!(classify(&schema, &schema).is_empty(), "{subject}");
        }
    }

    #[test]
    fn removed_and_new_files_in_a_directory_are_reported() {
        let dir = std::env::temp_dir().join(format!("orderflow-gate-{}", uuid::Uuid::now_v7()));
        crate::write_schemas(&dir).unwrap();
        std::fs::remove_file(dir.join("orders.created.v1.json")).unwrap();
        std::fs::write(dir.join("orders.created.v0.json"), "{}\n").unwrap();
        let findings = compare_with_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            findings,
            [
                Finding { subject: "orders.created.v1".into(), verdict: Verdict::New },
                Finding { subject: "orders.created.v0".into(), verdict: Verdict::Removed },
            ]
        );
    }
}

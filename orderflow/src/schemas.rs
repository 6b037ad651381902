//! `orderflow schemas`: write or check the committed schema files, and look at the event
//! contract: `list` (every event, its versions, subjects on both lanes, stream and CloudEvents
//! type), `diff <event> <from> <to>` (the field-level differences between two versions, from
//! the same classifier as the compatibility gate) and `show <subject>` (one schema).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use orderflow_events::compat::{Change, Rule, classify};
use orderflow_events::{EventKind, MessageType, Version, envelope_schema, schema_file_contents};

/// Flags of `orderflow schemas`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchemasArgs {
    #[command(subcommand)]
    command: Option<SchemasCommand>,
    /// Exit non-zero when the files differ from the types instead of writing them.
    #[arg(long)]
    check: bool,
    /// Directory of the schema files.
    #[arg(default_value = "schemas")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum SchemasCommand {
    /// Every event with its versions, subjects (standard and express lane), stream and
    /// CloudEvents type.
    List,
    /// The field-level differences between two versions of an event, e.g.
    /// `orderflow schemas diff orders.created v1 v2`.
    Diff {
        /// The event without its version: `orders.created`.
        event: String,
        /// The version to compare from: `v1`.
        from: String,
        /// The version to compare to: `v2`.
        to: String,
    },
    /// Print the JSON Schema of the message published on a subject (either lane).
    Show {
        /// `orders.created.v2` or `orders.created.v2.express`.
        subject: String,
    },
}

impl SchemasArgs {
    /// Runs the subcommand (or writes / checks the files).
    ///
    /// # Errors
    /// An unknown event, version or subject, a schema directory that cannot be written, or
    /// drift under `--check`.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Some(SchemasCommand::List) => crate::output::emit(&list()),
            Some(SchemasCommand::Diff { event, from, to }) => crate::output::emit(&diff(&event, &from, &to)?),
            Some(SchemasCommand::Show { subject }) => crate::output::emit(&show(&subject)?),
            None => write_or_check(&self.dir, self.check),
        }
    }
}

/// Writes the schema files and `asyncapi.yaml`, or with `check` compares them with the types.
fn write_or_check(dir: &std::path::Path, check: bool) -> anyhow::Result<()> {
    if check {
        let mut problems = orderflow_events::check_schemas(dir).err().unwrap_or_default();
        problems.extend(orderflow_events::check_asyncapi(dir).err());
        if !problems.is_empty() {
            bail!("schemas drifted:\n  {}", problems.join("\n  "));
        }
        crate::output::line(format_args!("schemas in {} match the event types", dir.display()))
    } else {
        for path in orderflow_events::write_schemas(dir)? {
            crate::output::line(format_args!("wrote {}", path.display()))?;
        }
        let path = orderflow_events::write_asyncapi(dir)?;
        crate::output::line(format_args!("wrote {}", path.display()))
    }
}

/// The `list` table: one row per message type.
pub(crate) fn list() -> String {
    let header = ["EVENT", "VERSION", "SUBJECT", "EXPRESS SUBJECT", "STREAM", "CLOUDEVENTS TYPE"];
    let rows: Vec<[String; 6]> = MessageType::ALL
        .iter()
        .map(|m| {
            [
                m.kind.name().to_owned(),
                m.version.to_string(),
                m.subject().to_owned(),
                m.express_subject().to_owned(),
                m.stream().to_owned(),
                m.type_name().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let render = |cells: [&str; 6]| {
        let line: Vec<String> =
            cells.iter().zip(widths).map(|(cell, width)| format!("{cell:width$}")).collect();
        format!("{}\n", line.join("  ").trim_end())
    };
    let mut out = render(header);
    for row in &rows {
        out.push_str(&render(row.each_ref().map(String::as_str)));
    }
    out
}

fn message_type(event: &str, version: &str) -> anyhow::Result<MessageType> {
    let kind = EventKind::ALL.into_iter().find(|k| k.name() == event).with_context(|| {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown event {event:?}; events: {}", names.join(", "))
    })?;
    let known = || kind.versions().iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ");
    let version = Version::parse(version)
        .filter(|v| kind.versions().contains(v))
        .with_context(|| format!("{event} has no version {version:?}; its versions: {}", known()))?;
    Ok(kind.at(version))
}

/// The `diff` report: fields added, removed and changed from `from` to `to`; descriptions
/// and the pinned constants that name the version (`type`, `$id`, title) are left out.
pub(crate) fn diff(event: &str, from: &str, to: &str) -> anyhow::Result<String> {
    let (old, new) = (message_type(event, from)?, message_type(event, to)?);
    let changes = classify(&envelope_schema(old), &envelope_schema(new));
    let naming_the_version = |c: &&Change| {
        c.rule == Rule::AnnotationChanged || (c.pointer == "/type" && c.rule == Rule::ConstChanged)
    };
    let (hidden, shown): (Vec<&Change>, Vec<&Change>) = changes.iter().partition(naming_the_version);
    let mut out = format!("{} → {}\n", old.subject(), new.subject());
    let is_addition = |r: Rule| matches!(r, Rule::RequiredPropertyAdded | Rule::OptionalPropertyAdded);
    let section = |r: Rule| {
        if is_addition(r) {
            "added"
        } else if r == Rule::PropertyRemoved {
            "removed"
        } else {
            "changed"
        }
    };
    for title in ["added", "removed", "changed"] {
        let entries: Vec<&&Change> = shown.iter().filter(|c| section(c.rule) == title).collect();
        if entries.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}:\n"));
        for change in entries {
            let verdict = if change.is_breaking() { "breaking" } else { "compatible" };
            out.push_str(&format!("  {}: {} ({verdict})\n", change.pointer, change.detail));
        }
    }
    if shown.is_empty() {
        out.push_str("no field-level differences\n");
    }
    if !hidden.is_empty() {
        out.push_str(&format!("({} description or type-name changes not shown)\n", hidden.len()));
    }
    Ok(out)
}

/// The `show` output: the committed schema file's text for `subject`.
pub(crate) fn show(subject: &str) -> anyhow::Result<String> {
    let message = MessageType::from_subject(subject).with_context(|| {
        let subjects: Vec<&str> = MessageType::ALL.iter().map(|m| m.subject()).collect();
        format!("unknown subject {subject:?}; subjects: {} (or their .express lanes)", subjects.join(", "))
    })?;
    Ok(schema_file_contents(message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn list_has_a_row_per_version_with_both_lanes_stream_and_type() {
        let table = list();
        assert_eq!(table.lines().count(), MessageType::ALL.len() + 1);
        let row = table.lines().find(|l| l.contains("orders.created.v2 ")).unwrap();
        for cell in
            ["orders.created", "v2", "orders.created.v2.express", "ORDERS", "orderflow.orders.created.v2"]
        {
            assert!(row.contains(cell), "{row:?} lacks {cell}");
        }
    }

    #[test]
    fn diff_names_added_and_changed_fields_between_versions() {
        let report = diff("inventory.rejected", "v1", "v2").unwrap();
        assert!(report.starts_with("inventory.rejected.v1 → inventory.rejected.v2\n"), "{report}");
        assert!(report.contains("currency_mismatch"), "{report}");
        assert!(!report.contains("/type:"), "{report}");
    }

    #[test]
    fn a_version_compared_with_itself_has_no_differences() {
        let report = diff("orders.created", "v1", "v1").unwrap();
        assert!(report.contains("no field-level differences"), "{report}");
    }

    #[test]
    fn unknown_events_versions_and_subjects_are_errors_that_list_the_known_ones() {
        let error = diff("orders.shipped", "v1", "v2").unwrap_err().to_string();
        assert!(error.contains("orders.created"), "{error}");
        let error = diff("payments.completed", "v1", "v2").unwrap_err().to_string();
        assert!(error.contains("its versions: v1"), "{error}");
        assert!(show("orders.created.v9").is_err());
    }

    #[test]
    fn show_prints_the_schema_of_either_lane() {
        let standard = show("orders.created.v2").unwrap();
        assert_eq!(show("orders.created.v2.express").unwrap(), standard);
        assert!(standard.contains("\"const\": \"orderflow.orders.created.v2\""));
    }
}

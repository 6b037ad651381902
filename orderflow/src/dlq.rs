//! `orderflow dlq list|show|replay|purge`: the dead-letter queue from the command line.
//!
//! A thin layer over [`orderflow_messaging::dlq_admin`], which owns the rules (what a replay
//! republishes, ack before delete, what a filter matches). This module parses flags, connects to
//! any NATS server (`--nats-url`, `NATS_URL`; it never starts one) and prints tables or JSON.
//! Dead letters are named by their DLQ stream sequence, the `SEQ` column of `list`.

use crate::output::emit;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use clap::{Args, Subcommand};
use orderflow_messaging::DlqReason;
use orderflow_messaging::dlq_admin::{self, DeadLetterRecord, Filter};
use orderflow_messaging::headers;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Longest error text in the `list` table.
const ERROR_COLUMN: usize = 60;

/// Flags of `orderflow dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The NATS server whose DLQ stream to work on.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true,
        hide_env_values = true
    )]
    nats_url: String,
    /// Credentials or nkey seed file of the admin identity (a service identity may not read
    /// the DLQ); default: `orderflow up`'s, `.orderflow/nats-creds/admin.nk`, when it exists.
    #[arg(long, env = "NATS_CREDS", global = true)]
    creds: Option<PathBuf>,
    /// PEM file of the CA that signed the NATS servers' certificates (requires TLS).
    #[arg(long, env = "NATS_CA", global = true)]
    nats_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters, oldest first.
    List(ListArgs),
    /// Show one dead letter: every header and the payload.
    Show(ShowArgs),
    /// Republish dead letters to their original subjects, then remove them from the DLQ.
    Replay(ReplayArgs),
    /// Delete dead letters for good.
    Purge(PurgeArgs),
}

/// Which dead letters (every flag narrows).
#[derive(Debug, Args)]
struct FilterArgs {
    /// Original subject, exact or with NATS wildcards: `orders.created.v1`, `orders.>`,
    /// `*.created.v1`.
    #[arg(long)]
    subject: Option<String>,
    /// Reason: schema_invalid, malformed, unknown_type, permanent_error or max_deliveries.
    #[arg(long, value_parser = parse_reason)]
    reason: Option<DlqReason>,
    /// The durable consumer that dead-lettered it, e.g. `inventory-orders-created`.
    #[arg(long)]
    consumer: Option<String>,
    /// Dead-lettered at or after: RFC 3339 (`2026-11-26T12:00:00Z`) or an age (`90s`, `15m`,
    /// `1h`, `2d`, `1h30m`).
    #[arg(long, value_parser = parse_when)]
    since: Option<OffsetDateTime>,
    /// Dead-lettered at or before: RFC 3339 or an age.
    #[arg(long, value_parser = parse_when)]
    until: Option<OffsetDateTime>,
    /// At most this many, oldest first.
    #[arg(long)]
    limit: Option<usize>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            subject: self.subject.clone(),
            reason: self.reason,
            since: self.since,
            until: self.until,
            consumer: self.consumer.clone(),
            limit: self.limit,
        }
    }
}

/// Flags of `orderflow dlq list`.
#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `orderflow dlq show`.
#[derive(Debug, Args)]
struct ShowArgs {
    /// The dead letter's DLQ sequence (`SEQ` in `list`).
    seq: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const FILTER_FLAGS: [&str; 6] = ["subject", "reason", "consumer", "since", "until", "limit"];

/// Flags of `orderflow dlq replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// Replay this one dead letter (its DLQ sequence).
    #[arg(conflicts_with = "all", conflicts_with_all = FILTER_FLAGS)]
    seq: Option<u64>,
    /// Replay every dead letter.
    #[arg(long, conflicts_with_all = FILTER_FLAGS)]
    all: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// Flags of `orderflow dlq purge`.
#[derive(Debug, Args)]
struct PurgeArgs {
    /// Purge every dead letter.
    #[arg(long, conflicts_with_all = FILTER_FLAGS)]
    all: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// Confirm: purged dead letters are gone for good.
    #[arg(long)]
    yes: bool,
}

/// Runs `orderflow dlq …`.
pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let creds = crate::nats::creds_or_up_default(args.creds.clone());
    let js = connect(&args.nats_url, creds.as_deref(), args.nats_ca).await?;
    match args.command {
        DlqCommand::List(a) => list(&js, &a).await,
        DlqCommand::Show(a) => show(&js, &a).await,
        DlqCommand::Replay(a) => replay(&js, &a).await,
        DlqCommand::Purge(a) => purge(&js, &a).await,
    }
}

/// One attempt, no retries: an operator wants to know now that the URL is wrong.
async fn connect(url: &str, creds: Option<&Path>, ca: Option<PathBuf>) -> anyhow::Result<jetstream::Context> {
    let tls = orderflow_messaging::NatsTls { ca_file: ca, ..Default::default() };
    let client = orderflow_messaging::connect::tool_options(creds, &tls)?
        .name("orderflow/dlq")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(orderflow_messaging::connect::server_list(url).as_slice())
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    Ok(jetstream::new(client))
}

async fn list(js: &jetstream::Context, a: &ListArgs) -> anyhow::Result<()> {
    let records = dlq_admin::list(js, &a.filter.filter()).await?;
    if a.json {
        let views: Vec<Summary<'_>> = records.iter().map(Summary::of).collect();
        return emit(&(serde_json::to_string_pretty(&views)? + "\n"));
    }
    emit(&table(&records))
}

async fn show(js: &jetstream::Context, a: &ShowArgs) -> anyhow::Result<()> {
    let record = dlq_admin::get(js, a.seq).await?;
    if a.json {
        return emit(&(serde_json::to_string_pretty(&Full::of(&record))? + "\n"));
    }
    emit(&details(&record))
}

async fn replay(js: &jetstream::Context, a: &ReplayArgs) -> anyhow::Result<()> {
    let filter = a.filter.filter();
    let outcomes = match a.seq {
        Some(seq) => {
            let record = dlq_admin::get(js, seq).await?;
            let result = dlq_admin::replay(js, seq).await;
            vec![dlq_admin::ReplayOutcome { seq, original_subject: record.original_subject, result }]
        }
        None if a.all || !filter.is_empty() => dlq_admin::replay_matching(js, &filter).await?,
        None => anyhow::bail!("say what to replay: a sequence, --all, or filters (see --help)"),
    };
    let mut out = String::new();
    let mut failed = 0;
    for o in &outcomes {
        match &o.result {
            Ok(r) => {
                let again = if r.duplicate { ", already stored by an earlier attempt" } else { "" };
                out += &format!(
                    "replayed {} -> {} ({} #{}, Nats-Msg-Id {}{again})\n",
                    o.seq, o.original_subject, r.stream, r.stream_seq, r.message_id
                );
            }
            Err(e) => {
                failed += 1;
                out += &format!("FAILED   {} -> {}: {}\n", o.seq, o.original_subject, chain(e));
            }
        }
    }
    out += &format!("{} replayed, {failed} failed\n", outcomes.len() - failed);
    emit(&out)?;
    anyhow::ensure!(failed == 0, "{failed} dead letter(s) could not be replayed");
    Ok(())
}

async fn purge(js: &jetstream::Context, a: &PurgeArgs) -> anyhow::Result<()> {
    let filter = a.filter.filter();
    anyhow::ensure!(
        a.all || !filter.is_empty(),
        "refusing to purge without --all or a filter (--subject, --reason, --consumer, --since, --until, --limit)"
    );
    anyhow::ensure!(
        a.yes,
        "purged dead letters are gone for good: check them with `orderflow dlq list` and the same \
         filters, then add --yes"
    );
    let purged = dlq_admin::purge(js, &filter).await?;
    emit(&format!("purged {purged} dead letter(s)\n"))
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

fn table(records: &[DeadLetterRecord]) -> String {
    if records.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let header = ["SEQ", "TIME", "SUBJECT", "REASON", "CONSUMER", "DELIV", "ORDER", "ERROR"];
    let dash = || "-".to_owned();
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                timestamp(r.time),
                r.original_subject.clone(),
                reason(r).unwrap_or("-").to_owned(),
                r.consumer.clone().unwrap_or_else(dash),
                r.delivery_count.map_or_else(dash, |n| n.to_string()),
                r.order_id.clone().unwrap_or_else(dash),
                r.error.as_deref().map_or_else(dash, |e| truncate(e, ERROR_COLUMN)),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out += padded.join("  ").trim_end();
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    out += &format!("{} dead letter(s)\n", records.len());
    out
}

fn details(r: &DeadLetterRecord) -> String {
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let origin = match (&r.original_stream, r.stream_seq) {
        (Some(stream), Some(seq)) => format!("{} ({stream} #{seq})", r.original_subject),
        _ => r.original_subject.clone(),
    };
    let fields = [
        ("stored", timestamp(r.time)),
        ("dlq subject", r.subject.clone()),
        ("original", origin),
        ("reason", or_dash(reason(r))),
        ("error", or_dash(r.error.as_deref())),
        ("consumer", or_dash(r.consumer.as_deref())),
        ("deliveries", r.delivery_count.map_or_else(|| "-".to_owned(), |n| n.to_string())),
        ("event type", or_dash(r.event_type.as_deref())),
        ("event id", or_dash(r.event_id.as_deref())),
        ("order id", or_dash(r.order_id.as_deref())),
        ("correlation", or_dash(r.correlation_id.as_deref())),
    ];
    let mut out = format!("dead letter {}\n", r.seq);
    for (name, value) in fields {
        out += &format!("  {name:<12} {value}\n");
    }
    out += "headers\n";
    for (name, value) in r.sorted_headers() {
        out += &format!("  {name}: {value}\n");
    }
    out += "payload\n";
    out += &match serde_json::from_slice::<serde_json::Value>(&r.payload) {
        Ok(v) => {
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| String::from_utf8_lossy(&r.payload).into())
        }
        Err(_) => String::from_utf8_lossy(&r.payload).into_owned(),
    };
    out.push('\n');
    out
}

/// The reason header as stored (also when it is not a reason this build knows).
fn reason(r: &DeadLetterRecord) -> Option<&str> {
    r.reason.map(DlqReason::as_str).or_else(|| r.header(headers::DLQ_REASON))
}

/// RFC 3339 in UTC with milliseconds.
fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let t = t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A dead letter in `list --json`.
#[derive(Serialize)]
struct Summary<'a> {
    seq: u64,
    time: String,
    subject: &'a str,
    original_subject: &'a str,
    original_stream: Option<&'a str>,
    stream_seq: Option<u64>,
    consumer: Option<&'a str>,
    reason: Option<&'a str>,
    error: Option<&'a str>,
    delivery_count: Option<i64>,
    original_msg_id: Option<&'a str>,
    event_type: Option<&'a str>,
    event_id: Option<&'a str>,
    order_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
}

impl<'a> Summary<'a> {
    fn of(r: &'a DeadLetterRecord) -> Self {
        Self {
            seq: r.seq,
            time: timestamp(r.time),
            subject: &r.subject,
            original_subject: &r.original_subject,
            original_stream: r.original_stream.as_deref(),
            stream_seq: r.stream_seq,
            consumer: r.consumer.as_deref(),
            reason: reason(r),
            error: r.error.as_deref(),
            delivery_count: r.delivery_count,
            original_msg_id: r.original_msg_id.as_deref(),
            event_type: r.event_type.as_deref(),
            event_id: r.event_id.as_deref(),
            order_id: r.order_id.as_deref(),
            correlation_id: r.correlation_id.as_deref(),
        }
    }
}

/// A dead letter in `show --json`: the summary, every header, and the payload (as JSON when it
/// is JSON, else as text).
#[derive(Serialize)]
struct Full<'a> {
    #[serde(flatten)]
    summary: Summary<'a>,
    headers: BTreeMap<String, Vec<String>>,
    payload: serde_json::Value,
}

impl<'a> Full<'a> {
    fn of(r: &'a DeadLetterRecord) -> Self {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in r.sorted_headers() {
            headers.entry(name).or_default().push(value);
        }
        let payload = serde_json::from_slice(&r.payload)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&r.payload).into_owned()));
        Self { summary: Summary::of(r), headers, payload }
    }
}

fn parse_reason(s: &str) -> Result<DlqReason, String> {
    s.parse().map_err(|_| {
        let all: Vec<&str> = DlqReason::ALL.iter().map(|r| r.as_str()).collect();
        format!("expected one of {}", all.join(", "))
    })
}

/// RFC 3339, or an age before now: `90s`, `15m`, `1h`, `2d`, `1w`, `1h30m`.
fn parse_when(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let age = parse_age(s).ok_or_else(|| {
        format!("{s:?} is neither an RFC 3339 time (2026-11-26T12:00:00Z) nor an age (90s, 15m, 1h, 2d)")
    })?;
    OffsetDateTime::now_utc().checked_sub(age).ok_or_else(|| format!("{s:?} is too long ago"))
}

fn parse_age(s: &str) -> Option<time::Duration> {
    let mut total = time::Duration::ZERO;
    let mut digits = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            's' => time::Duration::seconds(1),
            'm' => time::Duration::minutes(1),
            'h' => time::Duration::hours(1),
            'd' => time::Duration::days(1),
            'w' => time::Duration::weeks(1),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(i32::try_from(n).ok()?)?)?;
        any = true;
    }
    (any && digits.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_times_parse() {
        assert_eq!(parse_age("90s"), Some(time::Duration::seconds(90)));
        assert_eq!(parse_age("1h30m"), Some(time::Duration::minutes(90)));
        assert_eq!(parse_age("2d"), Some(time::Duration::days(2)));
        for bad in ["", "1", "h", "1x", "1h30", "-1h"] {
            assert_eq!(parse_age(bad), None, "{bad:?}");
        }
        assert!(parse_when("2026-11-26T12:00:00Z").is_ok());
        let hour_ago = parse_when("1h").ok().map(|t| OffsetDateTime::now_utc() - t);
        assert!(
            hour_ago.is_some_and(|d| d >= time::Duration::hours(1)
                && d < time::Duration::hours(1) + time::Duration::minutes(1))
        );
        assert!(parse_when("yesterday").is_err());
    }

    #[test]
    fn long_errors_are_cut_to_the_column() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghijkl", 5), "abcd…");
    }
}

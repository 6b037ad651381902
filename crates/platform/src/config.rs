//! Layered configuration: defaults < TOML file < environment (`ORDERFLOW__…`) < flags.
//!
//! Keys shared by every service (`nats_url`, `database_url`, `data_dir`) live at the top level
//! (`ORDERFLOW__NATS_URL`); a service's own keys live in its section (`ORDERFLOW__ORDER__PORT`,
//! `[order] port = 8080` in the file). Flags are passed in as a serializable struct whose `None`
//! fields are skipped, so an absent flag never overrides the layers below it.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The flags every service binary takes. Absent flags are skipped when serialized, so they never
/// override the file or the environment. URLs may carry passwords and the admin token is one:
/// `--help` never shows their environment values, and `Debug` redacts them.
#[derive(Clone, Default, clap::Args, Serialize)]
pub struct ServiceFlags {
    /// TOML configuration file (top-level shared keys, a section per service).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<std::path::PathBuf>,
    /// Interface to listen on.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTP port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// NATS server URL(s).
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// The service's NATS credentials or nkey seed file.
    #[arg(long, env = "NATS_CREDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the NATS servers' certificates (requires TLS).
    #[arg(long, env = "NATS_CA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_ca: Option<std::path::PathBuf>,
    /// PEM client certificate for NATS servers that verify clients (with --nats-key).
    #[arg(long, env = "NATS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_cert: Option<std::path::PathBuf>,
    /// PEM private key of --nats-cert.
    #[arg(long, env = "NATS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_key: Option<std::path::PathBuf>,
    /// `sqlite://path` or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// The admin token admin routes ask for (`Authorization: Bearer …`).
    #[arg(long, env = "ORDERFLOW_ADMIN_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<crate::http::Secret>,
}

// By hand so that a password in a URL never reaches a log line.
impl std::fmt::Debug for ServiceFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceFlags")
            .field("config", &self.config)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("nats_url", &self.nats_url.as_deref().map(redact_urls))
            .field("nats_creds", &self.nats_creds)
            .field("nats_ca", &self.nats_ca)
            .field("nats_cert", &self.nats_cert)
            .field("nats_key", &self.nats_key)
            .field("database_url", &self.database_url.as_deref().map(crate::db::redact))
            .field("admin_token", &self.admin_token)
            .finish()
    }
}

/// [`redact`](crate::db::redact) on each URL of a comma-separated list (`nats_url`).
pub fn redact_urls(urls: &str) -> String {
    urls.split(',').map(crate::db::redact).collect::<Vec<_>>().join(",")
}

/// The environment prefix.
pub(crate) const ENV_PREFIX: &str = "ORDERFLOW__";

/// Loads a service's settings from `defaults`, then the optional file, then the environment,
/// then `flags`. `section` is the service's key (`order`, `inventory`, …).
pub(crate) fn load<T: Serialize + DeserializeOwned>(
    section: &str,
    defaults: &T,
    file: Option<&Path>,
    flags: &impl Serialize,
) -> Result<T, Box<figment::Error>> {
    let raw = given(file);
    Figment::from(Serialized::defaults(defaults))
        .merge(raw.clone())
        .merge(raw.focus(section))
        .merge(Serialized::defaults(flags))
        .extract()
        .map_err(Box::new)
}

/// What the file and the environment give, before defaults and flags.
fn given(file: Option<&Path>) -> Figment {
    let mut raw = Figment::new();
    if let Some(file) = file {
        raw = raw.merge(Toml::file_exact(file));
    }
    raw.merge(Env::prefixed(ENV_PREFIX).split("__"))
}

/// Keys set for `section` — in the file's `[section]` table or as `ORDERFLOW__<SECTION>__…` —
/// that `defaults` does not have, as dotted paths (`consumer.concurency`): typos and renamed
/// keys, which deserializing alone would drop without a word.
pub(crate) fn unknown_keys<T: Serialize>(
    section: &str,
    defaults: &T,
    file: Option<&Path>,
) -> Result<Vec<String>, Box<figment::Error>> {
    let raw = given(file);
    let set: figment::value::Dict = raw.focus(section).extract().map_err(Box::new)?;
    let known = serde_json::to_value(defaults).unwrap_or_default();
    let mut unknown = Vec::new();
    collect_unknown("", &set, &known, &mut unknown);
    unknown.sort();
    Ok(unknown)
}

fn collect_unknown(
    prefix: &str,
    given: &figment::value::Dict,
    known: &serde_json::Value,
    out: &mut Vec<String>,
) {
    for (key, value) in given {
        let path = format!("{prefix}{key}");
        match (known.get(key), value) {
            (None, _) => out.push(path),
            (Some(known @ serde_json::Value::Object(_)), figment::value::Value::Dict(_, nested)) => {
                collect_unknown(&format!("{path}."), nested, known, out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct S {
        port: u16,
        nats_url: String,
        name: String,
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn keys_the_settings_do_not_have_are_found_in_the_file_and_the_environment() {
        #[derive(Serialize)]
        struct Nested {
            concurrency: u32,
        }
        #[derive(Serialize)]
        struct WithNested {
            port: u16,
            consumer: Nested,
        }
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "nats_url = \"n\"\n[svc]\nport = 1\nprot = 2\n[svc.consumer]\nconcurency = 3\n",
            )?;
            jail.set_env("ORDERFLOW__SVC__CONSUMER_CONCURRENCY", "4");
            jail.set_env("ORDERFLOW__OTHER__WHATEVER", "5");
            let defaults = WithNested { port: 0, consumer: Nested { concurrency: 1 } };

            let unknown = unknown_keys("svc", &defaults, Some(Path::new("c.toml"))).unwrap();

            assert_eq!(unknown, ["consumer.concurency", "consumer_concurrency", "prot"]);
            Ok(())
        });
    }

    #[test]
    fn debug_output_of_the_flags_hides_passwords_and_the_admin_token() {
        let flags = ServiceFlags {
            nats_url: Some("nats://a:NatsS3cret@h1:4222, nats://b:NatsS3cret@h2:4222".into()),
            database_url: Some("postgres://u:DbS3cret@h/db?sslmode=require&password=DbS3cret".into()),
            admin_token: Some(crate::http::Secret::new("T0kenS3cret")),
            ..ServiceFlags::default()
        };

        let text = format!("{flags:?}");

        for secret in ["NatsS3cret", "DbS3cret", "T0kenS3cret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("postgres://u:***@h/db"), "{text}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "nats_url = \"nats://file:1\"\n[svc]\nport = 1\nname = \"file\"\n")?;
            jail.set_env("ORDERFLOW__SVC__PORT", "2");
            let defaults = S { port: 0, nats_url: "nats://default".into(), name: "default".into() };

            let s = load("svc", &defaults, Some(Path::new("c.toml")), &Flags { port: None }).unwrap();
            assert_eq!(s, S { port: 2, nats_url: "nats://file:1".into(), name: "file".into() });

            let s = load("svc", &defaults, Some(Path::new("c.toml")), &Flags { port: Some(3) }).unwrap();
            assert_eq!(s.port, 3);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn event_versions_are_set_from_the_environment_as_lists() {
        use orderflow_events::Version;
        use orderflow_messaging::EventVersions;
        #[derive(Debug, Default, Serialize, Deserialize)]
        struct WithEvents {
            events: EventVersions,
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("ORDERFLOW__SVC__EVENTS__PUBLISH", "[v2]");
            jail.set_env("ORDERFLOW__SVC__EVENTS__CONSUME", "[v1, v2]");

            let s = load("svc", &WithEvents::default(), None, &Flags { port: None }).unwrap();

            assert_eq!(s.events.publish, [Version::V2]);
            assert_eq!(s.events.consume, [Version::V1, Version::V2]);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn nats_tls_settings_come_from_the_section_its_environment_and_nats_ca() {
        use crate::kernel::CommonSettings;
        use clap::Parser as _;
        #[derive(Debug, Default, Serialize, Deserialize)]
        #[serde(default)]
        struct Svc {
            #[serde(flatten)]
            common: CommonSettings,
        }
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: ServiceFlags,
        }
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[svc]\nnats_ca = \"/file/ca.pem\"\nnats_tls_required = true\n")?;
            jail.set_env("ORDERFLOW__SVC__NATS_CERT", "/env/client.pem");
            jail.set_env("ORDERFLOW__SVC__NATS_KEY", "/env/client-key.pem");
            let file = Some(Path::new("c.toml"));

            let from_file = load("svc", &Svc::default(), file, &ServiceFlags::default()).unwrap().common;
            jail.set_env("NATS_CA", "/env/ca.pem");
            let flags = Cli::try_parse_from(["svc"]).unwrap().flags;
            let from_nats_ca = load("svc", &Svc::default(), file, &flags).unwrap().common;

            assert_eq!(from_file.nats_ca.as_deref(), Some(Path::new("/file/ca.pem")));
            assert!(from_file.nats_tls_required);
            let tls = from_nats_ca.nats_tls();
            assert_eq!(tls.ca_file.as_deref(), Some(Path::new("/env/ca.pem")));
            assert_eq!(tls.cert_file.as_deref(), Some(Path::new("/env/client.pem")));
            assert_eq!(tls.key_file.as_deref(), Some(Path::new("/env/client-key.pem")));
            assert!(unknown_keys("svc", &Svc::default(), file).unwrap().is_empty());
            Ok(())
        });
    }
}

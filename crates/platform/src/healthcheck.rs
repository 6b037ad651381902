//! `<service> healthcheck`: a service binary probing its own readiness, for container images
//! that have no shell and no curl (`HEALTHCHECK CMD ["/usr/local/bin/order-service",
//! "healthcheck"]`).
//!
//! It GETs `http://127.0.0.1:<port>/health/ready` — the port from the same layered settings the
//! service itself reads (file, `ORDERFLOW__…` environment, flags given before `healthcheck`) —
//! or `--url`, and succeeds on a 2xx answer only. A refused connection, a timeout or any other
//! status is a failure whose message carries the service's own answer (the 503 body names what
//! is down), which Docker keeps in `docker inspect`'s health log.
//!
//! The client is a plain blocking HTTP/1.1 GET on a `std` socket: a probe runs before any
//! runtime exists, talks to a loopback listener of our own, and must stay small enough to ship
//! on its own (`orderflow-healthcheck`, the NATS image's probe). It never speaks TLS: the
//! services listen on plain HTTP.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

/// The flags of the `healthcheck` subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// Probe this URL instead of the service's own `http://127.0.0.1:<port>/health/ready`.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Give up after this many milliseconds (connect, send and answer together).
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

impl HealthcheckArgs {
    /// The subcommand, to add to a binary's command line.
    pub fn command() -> clap::Command {
        use clap::Args as _;
        Self::augment_args(clap::Command::new("healthcheck")).about(
            "Exit 0 when the service answers 2xx on /health/ready, 1 otherwise (container health checks)",
        )
    }

    /// Probes `--url`, or else the readiness URL of a service listening on `host`:`port`;
    /// returns what to print on success.
    pub fn run(&self, host: &str, port: u16) -> Result<String, HealthcheckError> {
        let url = self.url.clone().unwrap_or_else(|| ready_url(host, port));
        let status = probe(&url, Duration::from_millis(self.timeout_ms.max(1)))?;
        Ok(format!("{url}: {status}"))
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("cannot probe {url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connection, or the exchange failed or timed out. (The error is in the message, not
    /// a source, so that the one line a health log keeps says it all.)
    #[error("{url}: {error}")]
    Io {
        /// The URL probed.
        url: String,
        /// The socket error.
        error: std::io::Error,
    },
    /// The answer was not HTTP.
    #[error("{url}: not an HTTP answer: {head:?}")]
    NotHttp {
        /// The URL probed.
        url: String,
        /// The start of what came back.
        head: String,
    },
    /// A status other than 2xx, with the start of the body.
    #[error("{url}: {status} {body}")]
    Status {
        /// The URL probed.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
}

/// The readiness URL of a service listening on `host`:`port`: a wildcard address (`0.0.0.0`,
/// `::`, the container default) is probed on loopback.
pub fn ready_url(host: &str, port: u16) -> String {
    let host = match host {
        "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}/health/ready")
    } else {
        format!("http://{host}:{port}/health/ready")
    }
}

/// GETs `url` and returns its status when it is 2xx, within `timeout` in all.
pub fn probe(url: &str, timeout: Duration) -> Result<u16, HealthcheckError> {
    let deadline = Instant::now() + timeout;
    let (authority, path) = split_url(url)?;
    let io = |error| HealthcheckError::Io { url: url.to_owned(), error };
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
    };
    let addrs: Vec<_> = authority.to_socket_addrs().map_err(io)?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host resolves to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left().map_err(io)?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(last).map_err(io)?;
    stream.set_write_timeout(Some(left().map_err(io)?)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: orderflow-healthcheck\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    // Read until the server closes (Connection: close) or 4 KiB: enough for the status line and
    // the start of a 503's JSON body.
    let mut answer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while answer.len() < 4096 {
        stream.set_read_timeout(Some(left().map_err(io)?)).map_err(io)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A status line already in hand is the answer, however the rest went.
            Err(_) if answer.windows(2).any(|w| w == b"\r\n") => break,
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| HealthcheckError::NotHttp {
            url: url.to_owned(),
            head: status_line.chars().take(80).collect(),
        })?;
    if (200..300).contains(&status) {
        return Ok(status);
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body.trim());
    Err(HealthcheckError::Status { url: url.to_owned(), status, body: body.chars().take(512).collect() })
}

/// `http://host[:port][/path]` → (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(String, String), HealthcheckError> {
    let bad = |reason| HealthcheckError::BadUrl { url: url.to_owned(), reason };
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => return Err(bad("https is not supported: the services serve plain HTTP")),
        _ => return Err(bad("expected http://host[:port][/path]")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("expected http://host[:port][/path]"));
    }
    // A port after the host (not the colons of a bare IPv6 address in brackets).
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!host.contains(':') || host.ends_with(']'))
    });
    let authority = if has_port { authority.to_owned() } else { format!("{authority}:80") };
    Ok((authority, path.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server answering `answer` to the first request; returns its port.
    fn answer_once(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf);
            socket.write_all(answer.as_bytes()).unwrap();
        });
        port
    }

    #[test]
    fn a_2xx_answer_is_healthy() {
        let port = answer_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let status = probe(&format!("http://127.0.0.1:{port}/health/ready"), Duration::from_secs(3)).unwrap();
        assert_eq!(status, 200);
    }

    #[test]
    fn a_503_is_unhealthy_and_the_error_carries_its_body() {
        let port = answer_once("HTTP/1.1 503 Service Unavailable\r\n\r\n{\"nats\":\"down\"}");
        let err =
            probe(&format!("http://127.0.0.1:{port}/health/ready"), Duration::from_secs(3)).unwrap_err();
        assert!(
            matches!(&err, HealthcheckError::Status { status: 503, body, .. } if body.contains("nats")),
            "{err}"
        );
    }

    #[test]
    fn a_closed_port_is_unhealthy() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = probe(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(3)).unwrap_err();
        assert!(matches!(err, HealthcheckError::Io { .. }), "{err}");
    }

    #[test]
    fn wildcard_hosts_are_probed_on_loopback() {
        assert_eq!(ready_url("0.0.0.0", 8080), "http://127.0.0.1:8080/health/ready");
        assert_eq!(ready_url("::1", 8081), "http://[::1]:8081/health/ready");
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://nats-1:8222/healthz").unwrap(),
            ("nats-1:8222".into(), "/healthz".into())
        );
        assert_eq!(split_url("http://[::1]/x").unwrap(), ("[::1]:80".into(), "/x".into()));
        assert!(matches!(split_url("https://a/"), Err(HealthcheckError::BadUrl { .. })));
    }
}

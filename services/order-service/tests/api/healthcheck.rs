//! `order-service healthcheck`, the probe container images run (they have no shell or curl),
//! run as the real binary against a real running service.

use std::process::Output;

use orderflow_test_support::DbBackend;

use crate::helpers::spawn_app;

/// Runs the order-service binary with `args` and `env` (on top of the test's environment).
async fn order_service(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_order-service"));
    command.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command.output().await.unwrap()
}

fn port_of(base: &str) -> String {
    base.rsplit_once(':').unwrap().1.trim_end_matches('/').to_owned()
}

#[tokio::test]
async fn healthcheck_exits_0_when_the_service_it_is_configured_for_is_ready() {
    let app = spawn_app(DbBackend::Sqlite).await;
    app.wait_until_ready().await;
    let port = port_of(&app.url(""));

    // The port from the environment, the way a container's settings reach it.
    let by_env = order_service(&["healthcheck"], &[("ORDERFLOW__ORDER__PORT", port.clone())]).await;
    // The port from a flag given before the subcommand, and an explicit URL.
    let by_flag = order_service(&["--port", &port, "healthcheck"], &[]).await;
    let by_url = order_service(&["healthcheck", "--url", &app.url("/health/ready")], &[]).await;

    for (how, out) in [("env", by_env), ("flag", by_flag), ("url", by_url)] {
        assert!(out.status.success(), "{how}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("127.0.0.1:{port}/health/ready: 200")), "{how}: {stdout}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn healthcheck_exits_1_when_nothing_answers_or_the_answer_is_not_2xx() {
    let app = spawn_app(DbBackend::Sqlite).await;
    app.wait_until_ready().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let refused = order_service(&["healthcheck"], &[("ORDERFLOW__ORDER__PORT", closed.to_string())]).await;
    let not_found = order_service(&["healthcheck", "--url", &app.url("/no-such-route")], &[]).await;

    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("order-service is not ready"), "{refused:?}");
    assert_eq!(not_found.status.code(), Some(1), "{not_found:?}");
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("404"), "{not_found:?}");
    app.stop().await.unwrap();
}

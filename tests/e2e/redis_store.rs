//! The Redis store when things go wrong: bad credentials at start, TLS with client
//! certificates, Redis going away and coming back, and a master failover. Each test starts
//! its own servers.

use crate::harness::*;
use crate::redis::{self, store_section, Certs, Cluster, PASSWORD};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `serve` with `config` expecting it to fail at start; returns its stderr.
fn start_error(config: &str) -> String {
    let file = scratch_dir().join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "serve should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config for the store `section`, with a guest deadline long enough to ride out retries.
fn redis_config(section: &str) -> String {
    config_with_store(&default_guest(), "", section).replace("deadline: 500ms", "deadline: 3s")
}

#[test]
fn a_wrong_password_is_refused_at_start_naming_the_node() {
    let server = redis::standalone();
    let addr = format!("127.0.0.1:{}", server.port);
    let section = store_section("standalone", &[addr.clone()], None, "")
        .replace(PASSWORD, "not-the-password");
    let stderr = start_error(&redis_config(&section));
    assert!(
        stderr.contains(&format!("tokenginx.addrs[0] {addr}")),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("pass") || stderr.contains("auth"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_tls_cluster_with_client_certificates_serves_and_wrong_credentials_are_refused() {
    let certs = Certs::generate();
    let cluster = Cluster::start(Some(&certs));
    let good = store_section("cluster", &cluster.addrs(), Some(&certs), "");

    let host = Host::with_config(&redis_config(&good));
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    assert_eq!(host.introspect(&token).await["active"], true);
    drop(host);

    let first = &cluster.addrs()[0];
    let wrong_ca = good.replace(
        &certs.path("ca.pem").display().to_string(),
        &certs.path("other-ca.pem").display().to_string(),
    );
    let stderr = start_error(&redis_config(&wrong_ca));
    assert!(
        stderr.contains(&format!("tokenginx.addrs[0] {first}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    let client_cert_lines = format!(
        "    cert_file: {}\n    key_file: {}\n",
        certs.path("client.pem").display(),
        certs.path("client.key").display()
    );
    let no_client_cert = good.replace(&client_cert_lines, "");
    assert_ne!(no_client_cert, good);
    let stderr = start_error(&redis_config(&no_client_cert));
    assert!(
        stderr.contains(&format!("tokenginx.addrs[0] {first}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn redis_down_answers_503_fast_and_the_service_recovers_by_itself() {
    let mut server = redis::standalone();
    let section = store_section(
        "standalone",
        &[format!("127.0.0.1:{}", server.port)],
        None,
        "  pool_timeout: 1s\n",
    )
    .replace("read_timeout: 1s", "read_timeout: 500ms");
    let host = Host::with_config(&redis_config(&section));
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let metrics = host.get("/metrics").await.body;
    assert!(
        metrics.contains("tokenginx_connection_pool_size 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tokenginx_connection_pool_idle 4"),
        "nothing in flight: {metrics}"
    );

    server.kill();
    let start = Instant::now();
    let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
    reply.assert_error(503, "temporarily_unavailable");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "503 after {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert_eq!(host.get("/health/ready").await.status, 503);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "readiness answered after {:?}",
        start.elapsed()
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = host.request_token((DEMO_ID, DEMO_SECRET), None).await;
        if reply.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(host.get("/health/ready").await.status, 200);
}

#[tokio::test]
async fn with_wait_every_acknowledged_token_survives_a_master_failover() {
    let mut cluster = Cluster::start(None);
    let section = store_section(
        "cluster",
        &cluster.addrs(),
        None,
        "  wait_replicas: 1\n  wait_timeout: 1s\n  pool_timeout: 2s\n",
    );
    let host = Host::with_config(&redis_config(&section));
    let issue = || async { host.request_token((DEMO_ID, DEMO_SECRET), None).await };

    let mut acknowledged = Vec::new();
    for _ in 0..30 {
        let reply = issue().await;
        assert_eq!(reply.status, 200, "{}\nlog:\n{}", reply.body, host.log());
        acknowledged.push(reply.json()["access_token"].as_str().unwrap().to_owned());
    }

    // Kill a master; its replica takes over within the cluster node timeout (1 s).
    let victim = cluster.a_master();
    let heir = cluster.replica_of(victim);
    cluster.nodes[victim].kill();
    let killed = Instant::now();
    let mut refused = 0;
    let issue_recording = async |acknowledged: &mut Vec<String>, refused: &mut u32| {
        let reply = issue().await;
        match reply.status {
            200 => {
                acknowledged.push(reply.json()["access_token"].as_str().unwrap().to_owned());
                true
            }
            503 => {
                *refused += 1;
                false
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    };
    // Issue while the cluster fails over, until the replica is promoted.
    while !cluster.is_master(heir) {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no failover within 60 s"
        );
        issue_recording(&mut acknowledged, &mut refused).await;
    }
    let failed_over = killed.elapsed();
    cluster.wait_settled();
    // The old master comes back and rejoins as the new master's replica: with it, writes to
    // that shard can be acknowledged by a replica again.
    cluster.nodes[victim].restart();
    cluster.wait_settled();
    cluster.wait_replicas_attached();
    // The service serves again, without a restart: 30 consecutive tokens.
    let mut streak = 0;
    while streak < 30 {
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no recovery within 90 s ({refused} refused)"
        );
        if issue_recording(&mut acknowledged, &mut refused).await {
            streak += 1;
        } else {
            streak = 0;
        }
    }
    let recovered = killed.elapsed();
    let mut inactive = 0;
    for token in &acknowledged {
        if host.introspect(token).await["active"] != true {
            inactive += 1;
        }
    }
    println!(
        "failover: {} tokens acknowledged and checked, {inactive} lost; {refused} requests \
         refused; failover settled {failed_over:?} after the kill, 30 consecutive successes \
         {recovered:?} after it",
        acknowledged.len()
    );
    assert_eq!(inactive, 0, "acknowledged tokens were lost in the failover");
}

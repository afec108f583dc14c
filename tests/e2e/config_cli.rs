//! `check-config` and start-up errors: each names the file and the key.

use crate::harness::*;
use std::path::Path;
use std::process::{Command, Output};

fn host_cmd(args: &[&str], file: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"));
    cmd.args(args).arg(file).env_remove("DEMO_CLIENT_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn write_config(text: &str) -> std::path::PathBuf {
    let file = scratch_dir().join("config.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn the_shipped_configs_check_clean() {
    let out = host_cmd(
        &["check-config", "--config"],
        &repo_file("config/dev.yaml"),
        &[("DEMO_CLIENT_SECRET", "a-demo-secret-for-tests")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = host_cmd(
        &["check-config", "--config"],
        &repo_file("config/production.yaml"),
        &[
            ("TOKENGINX_API_KEY", "k"),
            ("OAUTH_ISSUER", "https://auth.example.com"),
            ("OAUTH_CLIENT_ID", "svc"),
            ("OAUTH_CLIENT_SECRET_SHA256", &"ab".repeat(32)),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unset_secret_variable_is_named() {
    let file = repo_file("config/dev.yaml");
    let out = host_cmd(&["check-config", "--config"], &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config/dev.yaml: oauth.clients[0].client_secret: environment variable DEMO_CLIENT_SECRET is not set"), "{stderr}");
}

#[test]
fn an_unknown_key_is_named_with_the_file() {
    let text = config(&default_guest(), "  prot: 8080");
    let file = write_config(&text);
    let out = host_cmd(&["check-config", "--config"], &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: server.prot: unknown field `prot`",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_bad_config_before_listening() {
    let text = config(&default_guest(), "  read_timeout: soon");
    let out = host_cmd(&["serve", "--config"], &write_config(&text), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.read_timeout: \"soon\" is not a duration"),
        "{stderr}"
    );
}

#[test]
fn a_missing_or_foreign_guest_is_a_clear_start_error() {
    let missing = scratch_dir().join("nope.wasm");
    let out = host_cmd(
        &["serve", "--config"],
        &write_config(&config(&missing, "")),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot load guest") && stderr.contains("nope.wasm"),
        "{stderr}"
    );

    let garbage = scratch_dir().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    let out = host_cmd(
        &["serve", "--config"],
        &write_config(&config(&garbage, "")),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.wasm"));
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config FILE"));
}

#[test]
fn check_config_refuses_what_serve_refuses_a_client_certificate_without_its_key() {
    let store = "tokenginx:\n  mode: standalone\n  addrs: [127.0.0.1:1]\n  tls:\n    enabled: true\n    cert_file: client.pem\n";
    let file = write_config(&config_with_store(&default_guest(), "", store));
    for command in ["check-config", "serve"] {
        let out = host_cmd(&[command, "--config"], &file, &[]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("tokenginx.tls.key_file: is required with cert_file"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn check_config_warns_of_keys_that_have_no_effect() {
    let store = "tokenginx:\n  mode: memory\n  min_idle_conns: 5\n  write_timeout: 1s\n";
    let file = write_config(&config_with_store(&default_guest(), "", store));
    let out = host_cmd(&["check-config", "--config"], &file, &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("tokenginx.min_idle_conns: has no effect"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tokenginx.write_timeout: has no effect"),
        "{stderr}"
    );
}

/// `compile-guest --config` needs the guest's limits, not the clients' secrets: it reads the
/// `guest` section alone (config/dev.yaml's secret variable is unset here).
#[test]
fn compile_guest_reads_only_the_guest_section_of_its_config() {
    let output = scratch_dir().join("guest.cwasm");
    let guest = default_guest();
    let args = [
        "compile-guest",
        guest.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--config",
    ];
    let out = host_cmd(&args, &repo_file("config/dev.yaml"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(output.exists());
    let broken = write_config("guest:\n  path: g.wasm\n  deadline: 0s\noauth: {}\n");
    let out = host_cmd(&args, &broken, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yaml: guest.deadline: must be greater than zero"),
        "{stderr}"
    );
}

/// `bench-guest` runs the phases asked for, prints each, and replaces its reused instance
/// once the guest's memory passes half the limit (here at once: a 2 MiB limit, and the
/// default guest starts with more than 1 MiB), so a guest whose heap only grows completes.
#[test]
fn bench_guest_runs_the_phases_asked_for_and_recycles_the_reused_instance() {
    let guest = default_guest();
    let small = write_config("guest:\n  path: unused.wasm\n  memory_limit: 2MiB\n");
    let args = [
        "bench-guest",
        guest.to_str().unwrap(),
        "--calls",
        "20",
        "--phases",
        "token,reused",
        "--config",
    ];
    let out = host_cmd(&args, &small, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(20 calls a phase, embedded store, memory limit 2 MiB)"),
        "{stdout}"
    );
    assert!(stdout.contains("token, fresh instance"), "{stdout}");
    assert!(!stdout.contains("introspect, fresh instance"), "{stdout}");
    assert!(
        stdout.contains("introspect, one reused instance")
            && stdout.contains("(instance replaced 20 times)"),
        "{stdout}"
    );
    let out = host_cmd(
        &["bench-guest", "g.wasm", "--phases", "warmup", "--config"],
        &small,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown phase \"warmup\""));
}

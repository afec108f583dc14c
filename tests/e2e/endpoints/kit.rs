//! `tokenginx-host test-guest`, the suite a guest author runs, as a guest author runs it:
//! the binary, a guest and a store, nothing else.

use crate::harness::*;
use std::process::Command;

/// Runs `test-guest` on `guest` with the store under test: its exit status and what it
/// printed.
fn test_guest(guest: &std::path::Path, only: Option<&str>, judge: &str) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"));
    command
        .arg("test-guest")
        .arg(guest)
        .args(["--store", &crate::redis::shared_store_url()])
        .args(["--judge", judge]);
    if let Some(only) = only {
        command.args(["--only", only]);
    }
    let out = command.output().expect("running test-guest");
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), printed)
}

#[test]
fn the_guest_under_test_passes_every_case_of_the_behaviour_table() {
    let (passed, printed) = test_guest(&default_guest(), None, "all");
    println!("{printed}");
    assert!(passed, "{printed}");
    let table = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/behaviour.md"),
    )
    .unwrap();
    // The endpoints' tables (up to what the host answers itself): each row's first cell.
    let endpoints = &table
        [table.find("## Token endpoint").unwrap()..table.find("## What the host answers").unwrap()];
    let mut rows: Vec<&str> = endpoints
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(" | ").next())
        .filter(|cell| *cell != "condition")
        .collect();
    // The cases it ran, by name (before the source in brackets and the time).
    let mut cases: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("  ok    "))
        .map(|l| l.rsplit_once(" [").map_or(l, |(name, _)| name))
        .collect();
    // Each names its source.
    let labelled = printed.lines().filter(|l| l.starts_with("  ok    "));
    assert!(
        labelled.clone().all(|l| l.contains(" [MUST, RFC ")
            || l.contains(" [SHOULD, RFC ")
            || l.contains(" [profile] ")),
        "{printed}"
    );
    rows.sort_unstable();
    cases.sort_unstable();
    assert!(!cases.is_empty(), "{printed}");
    assert_eq!(
        cases, rows,
        "the cases of test-guest and the rows of docs/behaviour.md"
    );
}

#[test]
fn a_guest_that_breaks_the_table_fails_with_what_was_expected_and_what_came_back() {
    // The misbehaving guest answers 200 {"ok":true} to every token request it does not
    // trap on.
    let (passed, printed) = test_guest(&misbehaving_guest(), Some("unknown client"), "all");
    assert!(!passed, "{printed}");
    assert!(
        printed.contains("  FAIL  an unknown client: 401 invalid_client [MUST, RFC 6749 5.2] ("),
        "{printed}"
    );
    assert!(
        printed.contains(
            "\n        expected: HTTP 401 with {\"error\": \"invalid_client\", ...}\n        got:      HTTP 200"
        ),
        "{printed}"
    );
    assert!(printed.contains("0 passed, 1 failed"), "{printed}");
}

#[test]
fn judged_by_the_rfcs_alone_a_departure_from_the_profile_is_a_difference_not_a_failure() {
    // The misbehaving guest's metadata is no cacheable document: a convention of this
    // service, not an RFC's rule. Its token endpoint breaks RFC 6749 either way.
    let cached = Some("it may be cached");
    let (passed, printed) = test_guest(&misbehaving_guest(), cached, "rfc");
    assert!(passed, "{printed}");
    assert!(
        printed.contains(
            "  DIFF  it may be cached: Cache-Control with a max-age, not no-store [profile]"
        ),
        "{printed}"
    );
    assert!(
        printed.contains("0 passed, 0 failed, 1 differ from this service's profile"),
        "{printed}"
    );
    let (passed, printed) = test_guest(&misbehaving_guest(), cached, "all");
    assert!(!passed, "{printed}");
    let (passed, printed) = test_guest(&misbehaving_guest(), Some("unknown client"), "rfc");
    assert!(!passed, "{printed}");
}

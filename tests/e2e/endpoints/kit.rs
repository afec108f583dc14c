//! `tokenginx-host test-guest`, the suite a guest author runs, as a guest author runs it:
//! the binary, a guest and a store, nothing else.

use crate::harness::*;
use std::process::Command;

/// Runs `test-guest` on `guest` with the store under test: its exit status and what it
/// printed.
fn test_guest(guest: &std::path::Path, only: Option<&str>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"));
    command
        .arg("test-guest")
        .arg(guest)
        .args(["--store", &crate::redis::shared_store_url()]);
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
    let (passed, printed) = test_guest(&default_guest(), None);
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
    // The cases it ran, by name.
    let mut cases: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("  ok    "))
        .map(|l| l.rsplit_once(" (").map_or(l, |(name, _)| name))
        .collect();
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
    let (passed, printed) = test_guest(&misbehaving_guest(), Some("unknown client"));
    assert!(!passed, "{printed}");
    assert!(
        printed.contains(
            "  FAIL  an unknown client: 401 invalid_client\n        expected: HTTP 401 with {\"error\": \"invalid_client\", ...}\n        got:      HTTP 200"
        ),
        "{printed}"
    );
    assert!(printed.contains("0 passed, 1 failed"), "{printed}");
}

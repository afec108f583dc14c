//! The counters this guest keeps (`server.counters`), which the host registers and exposes:
//! the Go guide's token counters, fed by the guest's own store operations, and the steps of
//! the authorization code flow and of refreshes. Their names and labels are those the host
//! kept before 0.2, so dashboards and alerts read them unchanged.

use crate::host::Transaction;
use crate::Host;

/// A counter: its name, help, and each label with every value it may take.
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [(&'static str, &'static [&'static str])],
}

const TOKEN_CREATED: &str = "tokenginx_token_created_total";
const TOKEN_RETRIEVED: &str = "tokenginx_token_retrieved_total";
const TOKEN_REVOKED: &str = "tokenginx_token_revoked_total";

/// A step of a flow, as the code names it, and the counter it feeds (with a `result` label
/// unless the step has no results).
pub const STEPS: [(&str, &str); 4] = [
    (
        "authorization-started",
        "tokenginx_authorizations_started_total",
    ),
    (
        "authorization-ended",
        "tokenginx_authorizations_ended_total",
    ),
    ("code-redeemed", "tokenginx_code_redemptions_total"),
    ("refresh", "tokenginx_refreshes_total"),
];

pub const COUNTERS: [Counter; 7] = [
    Counter {
        name: TOKEN_CREATED,
        help: "Tokens written to the store.",
        labels: &[],
    },
    Counter {
        name: TOKEN_RETRIEVED,
        help: "Token records read back from the store.",
        labels: &[],
    },
    Counter {
        name: TOKEN_REVOKED,
        help: "Token records deleted from the store by revocation.",
        labels: &[],
    },
    Counter {
        name: STEPS[0].1,
        help: "Authorization code flows begun at the authorization endpoint.",
        labels: &[],
    },
    Counter {
        name: STEPS[1].1,
        help: "Authorization code flows ended, by result (code, access_denied, error).",
        labels: &[("result", &["code", "access_denied", "error"])],
    },
    Counter {
        name: STEPS[2].1,
        help: "Authorization code redemptions, by result (ok, invalid_grant, replayed, error).",
        labels: &[("result", &["ok", "invalid_grant", "replayed", "error"])],
    },
    Counter {
        name: STEPS[3].1,
        help: "Refresh token grants, by result (ok; invalid_grant; reused: a rotated refresh \
               token came back and its grant was ended; replayed: it came back within the \
               reuse grace and got the answer it missed).",
        labels: &[("result", &["ok", "invalid_grant", "reused", "replayed"])],
    },
];

/// Counts `step` of a flow (one of [`STEPS`]) with `result` (ignored for a step without
/// results).
pub fn step(host: &impl Host, step: &str, result: &str) {
    let Some((_, name)) = STEPS.iter().find(|(s, _)| *s == step) else {
        debug_assert!(false, "no step {step}");
        return;
    };
    let counter = COUNTERS.iter().find(|c| c.name == *name);
    match counter.is_some_and(|c| c.labels.is_empty()) {
        true => host.count(name, &[], 1),
        false => host.count(name, &[result], 1),
    }
}

/// What a store key holds, for the token counters.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    AccessToken,
    Grant,
    Other,
}

fn kind(key: &str) -> Kind {
    if key.starts_with(crate::record::ACCESS_TOKEN_PREFIX) {
        Kind::AccessToken
    } else if key.starts_with(crate::grant::GRANT_PREFIX) {
        Kind::Grant
    } else {
        Kind::Other
    }
}

fn count(host: &impl Host, name: &str, by: usize) {
    if by > 0 {
        host.count(name, &[], by as u64);
    }
}

/// A read of `keys` that found `hits`: the access tokens found are retrieved.
pub fn read(host: &impl Host, keys: &[&str], hits: &[bool]) {
    let found = keys
        .iter()
        .zip(hits)
        .filter(|(key, hit)| **hit && kind(key) == Kind::AccessToken)
        .count();
    count(host, TOKEN_RETRIEVED, found);
}

/// A write of `key` that `written` says was made: an access token is created.
pub fn written(host: &impl Host, key: &str, written: bool) {
    count(
        host,
        TOKEN_CREATED,
        (written && kind(key) == Kind::AccessToken) as usize,
    );
}

/// A removal of `key`: an access token or a grant is revoked.
pub fn deleted(host: &impl Host, key: &str, deleted: bool) {
    count(
        host,
        TOKEN_REVOKED,
        (deleted && kind(key) != Kind::Other) as usize,
    );
}

/// A transaction that `applied` says was made: its access tokens are created, and its
/// removed tokens and grants revoked.
pub fn applied(host: &impl Host, tx: &Transaction, applied: bool) {
    if !applied {
        return;
    }
    let of = |written: bool, kinds: &[Kind]| {
        tx.changes
            .iter()
            .filter(|c| c.value.is_some() == written && kinds.contains(&kind(&c.key)))
            .count()
    };
    count(host, TOKEN_CREATED, of(true, &[Kind::AccessToken]));
    count(
        host,
        TOKEN_REVOKED,
        of(false, &[Kind::AccessToken, Kind::Grant]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Change;
    use crate::testing::TestHost;

    #[test]
    fn the_token_counters_count_access_tokens_and_grants_only() {
        let host = TestHost::new();
        let token = "oauth:access_token:{t}";
        let grant = "oauth:grant:{g}";
        read(
            &host,
            &[token, "oauth:code:{c}", token],
            &[true, true, false],
        );
        written(&host, token, true);
        written(&host, "oauth:code:{c}", true);
        deleted(&host, grant, true);
        deleted(&host, token, false);
        let change = |key: &str, value: Option<&[u8]>| Change {
            key: key.into(),
            value: value.map(<[u8]>::to_vec),
            ttl_ms: 1,
        };
        let tx = Transaction {
            expect: Vec::new(),
            changes: vec![
                change(token, Some(b"x")),
                change(grant, None),
                change(token, None),
            ],
        };
        applied(&host, &tx, false);
        applied(&host, &tx, true);
        assert_eq!(
            host.counts(),
            [
                "tokenginx_token_retrieved_total 1",
                "tokenginx_token_created_total 1",
                "tokenginx_token_revoked_total 1",
                "tokenginx_token_created_total 1",
                "tokenginx_token_revoked_total 2",
            ]
        );
    }

    #[test]
    fn each_step_feeds_a_declared_counter() {
        for (_, name) in STEPS {
            assert!(COUNTERS.iter().any(|c| c.name == name), "{name}");
        }
    }
}

//! The counters a guest declares (`server.counters`): checked at load, registered with the
//! host's Prometheus registry when the guest starts serving, and counted through the
//! `metrics.count` import. A new flow's metrics need no host change; a count outside what
//! the guest declared is refused loudly, never dropped without a word.

use crate::contract::server;
use crate::metrics::Metrics;
use anyhow::{bail, Context as _};
use prometheus::{IntCounter, IntCounterVec, Opts};

const MAX_COUNTERS: usize = 64;
const MAX_LABELS: usize = 4;
const MAX_SERIES: usize = 64;

/// One guest's counters, by name. A count is on every request's path: found by a scan of a
/// few names and each series made once at load, it costs no hashing and no lock (a
/// `HashMap` and `IntCounterVec::with_label_values` cost 700 instructions a count).
#[derive(Default)]
pub struct Counters(Vec<(String, Counter)>);

struct Counter {
    /// Each label's name and the values it may take.
    labels: Vec<(String, Vec<String>)>,
    series: IntCounterVec,
    /// Every series, by its label values.
    children: Vec<(Vec<String>, IntCounter)>,
}

impl Counters {
    /// The counters a guest declared, if each is well formed. A counter the serving guest
    /// declared alike (the same name and labels) is the same counter, so a swap keeps its
    /// count.
    pub fn declared(declared: Vec<server::Counter>, metrics: &Metrics) -> anyhow::Result<Self> {
        if declared.len() > MAX_COUNTERS {
            bail!(
                "it declares {} counters; at most {MAX_COUNTERS}",
                declared.len()
            );
        }
        let mut counters: Vec<(String, Counter)> = Vec::new();
        for counter in declared {
            let name = super::imports::sanitize(&counter.name);
            if counters.iter().any(|(n, _)| *n == name) {
                bail!("counter {name:?} is declared twice");
            }
            let checked =
                Counter::checked(counter, metrics).with_context(|| format!("counter {name:?}"))?;
            counters.push((name, checked));
        }
        Ok(Counters(counters))
    }

    /// Registers every counter with the host's registry (the guest now serves).
    pub fn register(&self, metrics: &Metrics) {
        for (name, counter) in &self.0 {
            let labels: Vec<&str> = counter.labels.iter().map(|(l, _)| l.as_str()).collect();
            metrics.adopt_guest_counter(name, &labels, &counter.series);
        }
    }

    /// Adds `by` to counter `name`'s series `values`, or says why it may not.
    pub fn count(&self, name: &str, values: &[String], by: u64) -> Result<(), String> {
        let Some((_, counter)) = self.0.iter().find(|(n, _)| n == name) else {
            return Err("the guest declared no such counter".into());
        };
        if let Some((_, series)) = counter.children.iter().find(|(v, _)| v == values) {
            series.inc_by(by);
            return Ok(());
        }
        if values.len() != counter.labels.len() {
            return Err(format!(
                "the counter has {} labels, not {}",
                counter.labels.len(),
                values.len()
            ));
        }
        let ((label, _), value) = counter
            .labels
            .iter()
            .zip(values)
            .find(|((_, allowed), value)| !allowed.contains(value))
            .expect("declared values for every label make a series");
        Err(format!(
            "{value:?} is not a declared value of label {label}"
        ))
    }
}

impl Counter {
    fn checked(counter: server::Counter, metrics: &Metrics) -> anyhow::Result<Counter> {
        let name = &counter.name;
        let shape = name.starts_with("tokenginx_")
            && name.ends_with("_total")
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !shape {
            bail!("a counter's name is tokenginx_<a-z, 0-9, _>_total");
        }
        if metrics.is_hosts(name) {
            bail!("the host keeps a metric of that name");
        }
        if counter.help.is_empty() || counter.help.len() > 512 {
            bail!("its help is 1 to 512 bytes");
        }
        if counter.labels.len() > MAX_LABELS {
            bail!("at most {MAX_LABELS} labels");
        }
        let mut series = 1usize;
        let mut labels = Vec::new();
        for label in counter.labels {
            let label_ok = (1..=32).contains(&label.name.len())
                && label
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
                && !label.name.starts_with("__");
            if !label_ok || labels.iter().any(|(l, _)| *l == label.name) {
                bail!(
                    "label {:?} is not a distinct name of a-z and '_'",
                    label.name
                );
            }
            if label.values.is_empty() || label.values.iter().any(|v| v.is_empty() || v.len() > 64)
            {
                bail!("label {} needs values of 1 to 64 bytes", label.name);
            }
            series = series.saturating_mul(label.values.len());
            labels.push((label.name, label.values));
        }
        if series > MAX_SERIES {
            bail!("its labels make {series} series; at most {MAX_SERIES}");
        }
        let names: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
        let series = metrics
            .guest_counter(name, &names)
            .map(Ok)
            .unwrap_or_else(|| {
                IntCounterVec::new(Opts::new(name.as_str(), counter.help), &names)
            })?;
        // Every series from zero, so that the first count shows in a rate.
        let children = combinations(&labels)
            .into_iter()
            .map(|values| {
                let child = series.with_label_values(&values);
                (values.into_iter().map(str::to_owned).collect(), child)
            })
            .collect();
        Ok(Counter {
            labels,
            series,
            children,
        })
    }
}

/// Every combination of the labels' values.
fn combinations(labels: &[(String, Vec<String>)]) -> Vec<Vec<&str>> {
    labels.iter().fold(vec![Vec::new()], |done, (_, values)| {
        done.iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(v.as_str());
                    next
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, labels: &[(&str, &[&str])]) -> server::Counter {
        server::Counter {
            name: name.into(),
            help: "Things.".into(),
            labels: labels
                .iter()
                .map(|(n, v)| server::Label {
                    name: n.to_string(),
                    values: v.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_declared_counter_counts_its_values_and_refuses_others() {
        let metrics = Metrics::new();
        let counters = Counters::declared(
            vec![counter(
                "tokenginx_things_total",
                &[("result", &["ok", "no"])],
            )],
            &metrics,
        )
        .unwrap();
        counters.register(&metrics);
        counters
            .count("tokenginx_things_total", &["ok".into()], 2)
            .unwrap();
        let text = metrics.render();
        assert!(
            text.contains("tokenginx_things_total{result=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tokenginx_things_total{result=\"no\"} 0"),
            "{text}"
        );
        let refused = counters.count("tokenginx_things_total", &["maybe".into()], 1);
        assert!(refused.unwrap_err().contains("\"maybe\""));
        assert!(counters.count("tokenginx_other_total", &[], 1).is_err());
        assert!(counters.count("tokenginx_things_total", &[], 1).is_err());
        // A second guest declaring it alike counts on from where the first left it.
        let next = Counters::declared(
            vec![counter("tokenginx_things_total", &[("result", &["ok"])])],
            &metrics,
        )
        .unwrap();
        next.register(&metrics);
        next.count("tokenginx_things_total", &["ok".into()], 1)
            .unwrap();
        assert!(metrics
            .render()
            .contains("tokenginx_things_total{result=\"ok\"} 3"));
    }

    #[test]
    fn a_counter_that_is_not_a_guests_to_declare_is_refused() {
        let metrics = Metrics::new();
        for (bad, why) in [
            (counter("things_total", &[]), "tokenginx_"),
            (counter("tokenginx_http_requests_total", &[]), "host keeps"),
            (counter("tokenginx_x_total", &[("Result", &["a"])]), "label"),
            (counter("tokenginx_x_total", &[("result", &[])]), "values"),
        ] {
            let e = format!(
                "{:#}",
                Counters::declared(vec![bad], &metrics).err().unwrap()
            );
            assert!(e.contains(why), "{e}");
        }
        let many: Vec<String> = (0..9).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = Counters::declared(
            vec![counter("tokenginx_x_total", &[("a", &many), ("b", &many)])],
            &metrics,
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("81 series"));
    }
}

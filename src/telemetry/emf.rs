//! CloudWatch Embedded Metric Format: when a namespace is set
//! (`--emf-namespace`), one JSON line on stdout per events commit (and per
//! failed commit attempt and stage restart), which the CloudWatch agent or
//! Lambda turns into metrics. The registry calls [`Emf`] as its
//! [`EventSink`]; the lines read its numbers.

use super::metrics::{CommitRecord, EventSink, Metrics};

impl Metrics {
    /// Turns on one EMF line per commit in this CloudWatch namespace.
    pub fn send_emf(&self, namespace: &str) {
        self.report_to(Box::new(Emf {
            namespace: namespace.to_string(),
        }));
    }
}

/// The EMF lines of one CloudWatch namespace.
#[derive(Debug)]
struct Emf {
    namespace: String,
}

impl EventSink for Emf {
    fn committed(&self, metrics: &Metrics, c: &CommitRecord<'_>) {
        if c.events {
            for line in self.commit_lines(metrics, c) {
                print_emf(&line);
            }
        }
    }

    fn commit_failed(&self, table: &str) {
        print_emf(&emf(
            &self.namespace,
            &[("Table", table)],
            &[("CommitFailures", "Count", 1.0)],
            chrono::Utc::now().timestamp_millis(),
        ));
    }

    fn stage_restarted(&self, stage: &str) {
        print_emf(&emf(
            &self.namespace,
            &[("Stage", stage)],
            &[("StageRestarts", "Count", 1.0)],
            chrono::Utc::now().timestamp_millis(),
        ));
    }
}

impl Emf {
    /// The EMF lines of an events commit: its counts and health by table,
    /// then its rejects by table and reason (one line per reason it has).
    fn commit_lines(&self, metrics: &Metrics, c: &CommitRecord<'_>) -> Vec<String> {
        let now = chrono::Utc::now();
        let millis = now.timestamp_millis();
        let mut values = vec![
            ("RecordsRead", "Count", c.counts.records_read as f64),
            ("RowsCommitted", "Count", c.counts.rows_written as f64),
            ("Rejected", "Count", c.counts.rejected_total() as f64),
            ("Duplicates", "Count", c.counts.duplicates_dropped() as f64),
            ("CommitSeconds", "Seconds", c.latency.as_secs_f64()),
            ("CommitConflicts", "Count", f64::from(c.conflicts)),
        ];
        if let Some(fresh) = metrics.freshness(now.timestamp_micros()) {
            values.push(("FreshnessSeconds", "Seconds", fresh));
        }
        if let Some((metadata_bytes, manifests)) = c.health {
            values.push(("MetadataBytes", "Bytes", metadata_bytes as f64));
            values.push(("Manifests", "Count", manifests as f64));
        }
        let mut lines = vec![emf(&self.namespace, &[("Table", c.table)], &values, millis)];
        for reason in crate::event::RejectReason::ALL {
            let n = c.counts.rejected.get(&reason).copied().unwrap_or(0);
            if n > 0 {
                lines.push(emf(
                    &self.namespace,
                    &[("Table", c.table), ("Reason", reason.code())],
                    &[("Rejected", "Count", n as f64)],
                    millis,
                ));
            }
        }
        lines
    }
}

/// Writes an EMF line to stdout; a closed stdout loses the line, not the run.
fn print_emf(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// One CloudWatch Embedded Metric Format line: the values as metrics of
/// `namespace` with one dimension set, `dimensions` (name, value).
fn emf(
    namespace: &str,
    dimensions: &[(&str, &str)],
    values: &[(&str, &str, f64)],
    millis: i64,
) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let metrics: Vec<_> = values
        .iter()
        .map(|(name, unit, _)| serde_json::json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": millis,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": metrics,
            }],
        },
    });
    for (name, value) in dimensions {
        line[*name] = serde_json::json!(value);
    }
    for (name, _, value) in values {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::RejectReason;
    use crate::table::summary::QualityCounts;

    #[test]
    fn emf_lines_name_namespace_dimension_and_values() {
        let line = emf(
            "Floe",
            &[("Table", "analytics.events")],
            &[
                ("Rejected", "Count", 3.0),
                ("CommitSeconds", "Seconds", 0.5),
            ],
            1_700_000_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Floe");
        assert_eq!(m["Dimensions"], serde_json::json!([["Table"]]));
        assert_eq!(m["Metrics"][1]["Name"], "CommitSeconds");
        assert_eq!(m["Metrics"][1]["Unit"], "Seconds");
        assert_eq!(v["Table"], "analytics.events");
        assert_eq!(v["Rejected"], 3.0);
        assert_eq!(v["CommitSeconds"], 0.5);
    }

    #[test]
    fn emf_lines_of_a_commit_carry_health_and_rejects_by_reason() {
        let m = Metrics::empty();
        let mut counts = QualityCounts {
            records_read: 7,
            ..QualityCounts::default()
        };
        counts.rejected.insert(RejectReason::InvalidJson, 2);
        counts.rejected.insert(RejectReason::TooLarge, 1);
        let record = CommitRecord {
            table: "analytics.events",
            counts: &counts,
            files: 1,
            bytes: 10,
            conflicts: 2,
            latency: Duration::from_millis(250),
            newest_micros: None,
            events: true,
            health: Some((4096, 3)),
        };
        let emf = Emf {
            namespace: "Floe".to_string(),
        };
        let lines: Vec<serde_json::Value> = emf
            .commit_lines(&m, &record)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["CommitConflicts"], 2.0);
        assert_eq!(lines[0]["MetadataBytes"], 4096.0);
        assert_eq!(lines[0]["Manifests"], 3.0);
        assert_eq!(lines[0]["Rejected"], 3.0);
        let by_reason: Vec<(String, f64)> = lines[1..]
            .iter()
            .map(|l| {
                assert_eq!(
                    l["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    serde_json::json!([["Table", "Reason"]])
                );
                (
                    l["Reason"].as_str().unwrap().to_string(),
                    l["Rejected"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_reason,
            [
                ("invalid_json".to_string(), 2.0),
                ("too_large".to_string(), 1.0)
            ]
        );
    }
}

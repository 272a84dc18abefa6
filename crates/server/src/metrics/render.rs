//! The Prometheus text exposition format (version 0.0.4): one `# HELP` and `# TYPE` line per
//! family, then its samples. Label values and help texts are escaped as the format requires.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use ocireg_store::{NamespaceUsage, SpaceReport, Store, StoreStats};

use super::labels::{pairs, slot_status, EndpointLabel, STATUS_SLOTS};
use super::{Metrics, DURATION_BUCKETS};

/// A text exposition being written.
struct Out {
    text: String,
}

impl Out {
    /// Starts a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample; `value` is already formatted.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(value);
        self.text.push('\n');
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], &value.to_string());
    }

    /// A gauge family with one sample per namespace.
    fn per_namespace(
        &mut self,
        name: &str,
        help: &str,
        namespaces: &BTreeMap<String, NamespaceUsage>,
        value: impl Fn(&NamespaceUsage) -> u64,
    ) {
        self.family(name, "gauge", help);
        for (ns, u) in namespaces {
            self.sample(name, &[("namespace", ns)], &value(u).to_string());
        }
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub(crate) fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a help text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the format writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest round-trip).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        v.to_string()
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The whole exposition.
pub(super) fn render(m: &Metrics, store: Option<&Store>, space: Option<&SpaceReport>) -> String {
    let mut out = Out {
        text: String::with_capacity(16 * 1024),
    };
    out.family(
        "ocireg_build_info",
        "gauge",
        "Always 1; the version label is the ocireg version serving.",
    );
    out.sample(
        "ocireg_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        "1",
    );
    requests(m, &mut out);
    durations(m, &mut out);
    bytes(m, &mut out);
    if let Some(store) = store {
        store_gauges(store, &mut out);
        store_counters(store.stats(), &mut out);
    }
    if let Some(space) = space {
        space_gauges(space, &mut out);
    }
    out.text
}

fn requests(m: &Metrics, out: &mut Out) {
    let name = "ocireg_http_requests_total";
    out.family(
        name,
        "counter",
        "HTTP requests answered by the registry API, by endpoint kind, method and status.",
    );
    for (ep, method, pair) in pairs() {
        let base = pair * STATUS_SLOTS;
        for slot in 0..STATUS_SLOTS {
            let n = load(&m.inner.requests[base + slot]);
            if n == 0 {
                continue;
            }
            let status = slot_status(slot).map_or_else(|| "other".to_owned(), |s| s.to_string());
            out.sample(
                name,
                &[
                    ("endpoint", ep.as_str()),
                    ("method", method.as_str()),
                    ("status", &status),
                ],
                &n.to_string(),
            );
        }
    }
}

fn durations(m: &Metrics, out: &mut Out) {
    let name = "ocireg_http_request_duration_seconds";
    out.family(
        name,
        "histogram",
        "Time from a request's arrival to the end of its response body, by endpoint kind and method.",
    );
    let bucket_name = format!("{name}_bucket");
    let les: Vec<String> = DURATION_BUCKETS.iter().map(|b| float(*b)).collect();
    for (ep, method, pair) in pairs() {
        let h = &m.inner.durations[pair];
        let counts: Vec<u64> = h.buckets.iter().map(load).collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            continue;
        }
        let (e, me) = (ep.as_str(), method.as_str());
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = les.get(i).map_or("+Inf", String::as_str);
            out.sample(
                &bucket_name,
                &[("endpoint", e), ("method", me), ("le", le)],
                &cumulative.to_string(),
            );
        }
        let sum = load(&h.sum_nanos) as f64 / 1e9;
        let labels = [("endpoint", e), ("method", me)];
        out.sample(&format!("{name}_sum"), &labels, &float(sum));
        out.sample(&format!("{name}_count"), &labels, &count.to_string());
    }
}

fn bytes(m: &Metrics, out: &mut Out) {
    for (name, help, counters) in [
        (
            "ocireg_http_request_bytes_total",
            "Request body bytes read by the registry API, by endpoint kind.",
            &m.inner.request_bytes,
        ),
        (
            "ocireg_http_response_bytes_total",
            "Response body bytes sent by the registry API, by endpoint kind.",
            &m.inner.response_bytes,
        ),
    ] {
        out.family(name, "counter", help);
        for ep in EndpointLabel::ALL {
            let n = load(&counters[ep as usize]);
            out.sample(name, &[("endpoint", ep.as_str())], &n.to_string());
        }
    }
}

fn store_gauges(store: &Store, out: &mut Out) {
    let usage = store.usage();
    out.single(
        "ocireg_storage_bytes",
        "gauge",
        "Physical bytes of the data referenced by repositories (shared data counted once).",
        usage.total_bytes,
    );
    out.per_namespace(
        "ocireg_namespace_storage_bytes",
        "Bytes of the distinct blobs and manifests linked in a namespace's repositories.",
        &usage.namespaces,
        |u| u.bytes,
    );
    out.single(
        "ocireg_artifacts",
        "gauge",
        "Artifacts (manifest revisions, image index children excepted) in all repositories.",
        usage.artifacts,
    );
    out.per_namespace(
        "ocireg_namespace_artifacts",
        "Artifacts in a namespace's repositories.",
        &usage.namespaces,
        |u| u.artifacts,
    );
    out.single(
        "ocireg_repositories",
        "gauge",
        "Repositories (with at least one tag, manifest or blob link).",
        store.repository_count() as u64,
    );
    out.single(
        "ocireg_upload_sessions",
        "gauge",
        "Blob upload sessions open in this process.",
        store.upload_session_count() as u64,
    );
}

/// The storage's free space, size and reserve.
fn space_gauges(space: &SpaceReport, out: &mut Out) {
    out.single(
        "ocireg_storage_available_bytes",
        "gauge",
        "Free bytes on the storage's filesystem (new uploads stop at the reserve).",
        space.available,
    );
    out.single(
        "ocireg_storage_capacity_bytes",
        "gauge",
        "Size of the storage's filesystem.",
        space.total,
    );
    out.single(
        "ocireg_storage_reserve_bytes",
        "gauge",
        "Free space below which new uploads are refused (507).",
        space.reserve,
    );
}

fn store_counters(s: &StoreStats, out: &mut Out) {
    let counters: [(&str, &str, &AtomicU64); 9] = [
        (
            "ocireg_gc_runs_total",
            "Completed garbage collection runs.",
            &s.gc_runs,
        ),
        (
            "ocireg_gc_blobs_removed_total",
            "Data objects removed by garbage collection.",
            &s.gc_blobs_removed,
        ),
        (
            "ocireg_gc_manifests_removed_total",
            "Untagged manifests removed by garbage collection.",
            &s.gc_manifests_removed,
        ),
        (
            "ocireg_gc_uploads_removed_total",
            "Stale upload sessions removed by garbage collection.",
            &s.gc_uploads_removed,
        ),
        (
            "ocireg_gc_bytes_freed_total",
            "Bytes freed by garbage collection.",
            &s.gc_bytes_freed,
        ),
        (
            "ocireg_scrub_runs_total",
            "Completed scrub runs.",
            &s.scrub_runs,
        ),
        (
            "ocireg_scrub_objects_checked_total",
            "Objects re-hashed by scrub.",
            &s.scrub_objects_checked,
        ),
        (
            "ocireg_scrub_bytes_checked_total",
            "Bytes re-hashed by scrub.",
            &s.scrub_bytes_checked,
        ),
        (
            "ocireg_scrub_mismatches_total",
            "Objects whose bytes did not match their digest (quarantined by scrub).",
            &s.scrub_mismatches,
        ),
    ];
    for (name, help, counter) in counters {
        out.single(name, "counter", help, load(counter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(0.005), "0.005");
        assert_eq!(float(1.0), "1");
    }
}

//! A strict parser of the Prometheus text exposition format 0.0.4 for tests: any malformed
//! line is an error, and so are the structural mistakes a scraper would reject or misread
//! (samples before their `# TYPE`, a family split in two, duplicate series, histogram buckets
//! out of order or not cumulative, a missing `+Inf` bucket or one that differs from `_count`).
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written (with `_bucket` / `_sum` / `_count` for histograms).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// One family (from its `# TYPE` line on).
#[derive(Debug, Clone, Default)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// The help text (unescaped).
    pub help: Option<String>,
    /// The samples, in order.
    pub samples: Vec<Sample>,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Families by name.
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// Samples named `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.families
            .values()
            .flat_map(|f| f.samples.iter())
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample with exactly these labels (`None` if absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .find(name, labels)
            .into_iter()
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert!(found.len() <= 1, "several samples {name} {labels:?}");
        found.first().map(|s| s.value)
    }

    /// Sum of the samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).iter().map(|s| s.value).sum()
    }

    /// The kind of a family.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.families.get(family).map(|f| f.kind.as_str())
    }
}

fn is_name(s: &str, colons: bool) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let ok_first = first.is_ascii_alphabetic() || first == '_' || (colons && first == ':');
    ok_first && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => {
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            if !ok {
                return Err(format!("bad number {s:?}"));
            }
            s.parse::<f64>()
                .map_err(|e| format!("bad number {s:?}: {e}"))
        }
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("bad escape \\{other:?} in help")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        rest = &rest[end + 1..];
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

/// The family a sample name belongs to, given the declared families.
fn family_of<'a>(name: &'a str, declared: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                declared.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base;
            }
        }
    }
    name
}

/// Parses and checks a whole exposition.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("exposition does not end with a newline".into());
    }
    let mut p = Parser::default();
    for (no, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |m: String| format!("line {}: {m}: {line:?}", no + 1);
        match line.strip_prefix('#') {
            Some(comment) => p.comment(comment).map_err(err)?,
            None => p.sample(line).map_err(err)?,
        }
    }
    for (name, fam) in &p.exp.families {
        if fam.kind == "histogram" {
            check_histogram(name, fam)?;
        }
    }
    Ok(p.exp)
}

/// The state of a parse: what is declared, which family is open, which are closed.
#[derive(Default)]
struct Parser {
    exp: Exposition,
    declared: HashMap<String, String>,
    finished: BTreeSet<String>,
    current: Option<String>,
    series: BTreeSet<String>,
}

impl Parser {
    /// Makes `family` the open one; a family may not come back once another began.
    fn enter(&mut self, family: &str, what: &str) -> Result<(), String> {
        if self.current.as_deref() == Some(family) {
            return Ok(());
        }
        if let Some(prev) = self.current.take() {
            self.finished.insert(prev);
        }
        if self.finished.contains(family) {
            return Err(format!("family {family} {what}"));
        }
        self.current = Some(family.to_owned());
        Ok(())
    }

    /// A `#` line: `HELP` and `TYPE` are checked, any other comment is skipped.
    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let comment = comment.strip_prefix(' ').unwrap_or(comment);
        let mut parts = comment.splitn(3, ' ');
        let keyword = parts.next().unwrap_or("");
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        let name = parts.next().ok_or("no metric name")?;
        if !is_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let rest = parts.next().unwrap_or("");
        self.enter(name, "appears twice")?;
        let fam = self.exp.families.entry(name.to_owned()).or_default();
        if keyword == "HELP" {
            if fam.help.is_some() {
                return Err("second HELP".into());
            }
            fam.help = Some(unescape_help(rest)?);
            return Ok(());
        }
        if !fam.kind.is_empty() || !fam.samples.is_empty() {
            return Err("TYPE after samples or twice".into());
        }
        if !matches!(
            rest,
            "counter" | "gauge" | "histogram" | "summary" | "untyped"
        ) {
            return Err(format!("unknown type {rest:?}"));
        }
        fam.kind = rest.to_owned();
        self.declared.insert(name.to_owned(), rest.to_owned());
        Ok(())
    }

    /// A sample line `name{labels} value [timestamp]`.
    fn sample(&mut self, line: &str) -> Result<(), String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let mut fields = rest.split(' ').filter(|f| !f.is_empty());
        let value = parse_float(fields.next().ok_or("no value")?)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("bad timestamp {ts:?}"))?;
        }
        if fields.next().is_some() {
            return Err("trailing fields".into());
        }
        let family = family_of(name, &self.declared).to_owned();
        self.enter(&family, "split")?;
        if !self.series.insert(format!("{name}{labels:?}")) {
            return Err("duplicate series".into());
        }
        let fam = self.exp.families.entry(family).or_default();
        if fam.kind.is_empty() {
            fam.kind = "untyped".into();
        }
        if fam.kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err("negative or NaN counter".into());
        }
        if fam.kind == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err("bucket without le".into());
        }
        fam.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
        Ok(())
    }
}

fn check_histogram(name: &str, fam: &Family) -> Result<(), String> {
    let bucket = format!("{name}_bucket");
    let count = format!("{name}_count");
    let sum = format!("{name}_sum");
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    let mut sums: BTreeSet<String> = BTreeSet::new();
    for s in &fam.samples {
        let mut key_labels = s.labels.clone();
        let le = key_labels.remove("le");
        let key = format!("{key_labels:?}");
        if s.name == bucket {
            let le = parse_float(&le.unwrap_or_default())?;
            groups.entry(key).or_default().push((le, s.value));
        } else if s.name == count {
            counts.insert(key, s.value);
        } else if s.name == sum {
            sums.insert(key);
        } else {
            return Err(format!("{}: unexpected sample in histogram {name}", s.name));
        }
    }
    for (key, buckets) in &groups {
        for w in buckets.windows(2) {
            if w[0].0.is_nan() || w[0].0 >= w[1].0 {
                return Err(format!("{name}{key}: le not increasing"));
            }
            if w[0].1 > w[1].1 {
                return Err(format!("{name}{key}: buckets not cumulative"));
            }
        }
        let last = buckets.last().expect("non-empty");
        if last.0 != f64::INFINITY {
            return Err(format!("{name}{key}: no +Inf bucket"));
        }
        if counts.get(key) != Some(&last.1) {
            return Err(format!("{name}{key}: _count differs from the +Inf bucket"));
        }
        if !sums.contains(key) {
            return Err(format!("{name}{key}: no _sum"));
        }
    }
    if counts.len() != groups.len() {
        return Err(format!("{name}: _count without buckets"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn the_parser_rejects_malformed_expositions() {
        let good = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
        let e = parse(good).unwrap();
        assert_eq!(e.value("a_total", &[("x", "q\"\\\n")]), Some(3.0));
        for bad in [
            "a 1",                      // no final newline
            "a{x=\"1\"\n",              // no value
            "a{x=1} 1\n",               // unquoted
            "a{x=\"\\t\"} 1\n",         // bad escape
            "a 1\na 2\n",               // duplicate series
            "a 1\nb 1\na{x=\"1\"} 1\n", // split family
            "a 1\n# TYPE a counter\n",  // TYPE after samples
            "# TYPE a counter\na -1\n", // negative counter
            "a one\n",                  // not a number
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 3\n",
            "# TYPE a gauge\n# TYPE a gauge\n",
            "1a 1\n",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad:?}");
        }
    }
}

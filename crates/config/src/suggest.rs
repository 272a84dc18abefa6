//! "Did you mean": the known name closest to a misspelt one.

/// Largest edit distance a suggestion may be from what was written.
const MAX_DISTANCE: usize = 2;

/// The candidate closest to `given` by edit distance (insertions, deletions, substitutions and
/// swaps of neighbours; case and `-`/`_` ignored), when it is close enough to be a likely typo:
/// at most [`MAX_DISTANCE`] edits and fewer than half of the candidate's characters. Ties go
/// to the earlier candidate.
pub(crate) fn closest<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = fold(given);
    candidates
        .into_iter()
        .map(|c| (osa_distance(&given, &fold(c)), c))
        .filter(|(d, c)| *d <= MAX_DISTANCE && *d * 2 < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A ` did you mean "x"?` suffix, or nothing.
pub(crate) fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(given, candidates).map_or_else(String::new, |c| format!("; did you mean {c:?}?"))
}

fn fold(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
/// substring), over characters.
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(osa_distance("port", "prot"), 1);
        assert_eq!(osa_distance("endpont", "endpoint"), 1);
        assert_eq!(osa_distance("", "abc"), 3);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
        assert_eq!(osa_distance("same", "same"), 0);
    }

    #[test]
    fn closest_known_name() {
        let fields = ["deployment", "type", "endpoint", "port", "tls_enabled"];
        assert_eq!(closest("prot", fields), Some("port"));
        assert_eq!(closest("endpont", fields), Some("endpoint"));
        assert_eq!(closest("Endpoint", fields), Some("endpoint"));
        assert_eq!(closest("tls-enabled", fields), Some("tls_enabled"));
        assert_eq!(closest("colour", fields), None);
        assert_eq!(closest("ab", ["a"]), None, "too short to be a typo of it");
        assert_eq!(
            did_you_mean("extension", ["extensions", "kcl_packages"]),
            "; did you mean \"extensions\"?"
        );
        assert_eq!(did_you_mean("zzz", ["extensions"]), "");
    }
}

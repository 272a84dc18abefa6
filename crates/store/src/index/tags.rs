//! A repository's tags: tag → manifest digest, in tag order.
//!
//! Most repositories carry a few tags, some carry many. A `BTreeMap` allocates a node with room
//! for eleven entries for even one tag (about 700 bytes), so up to [`SMALL`] tags are kept in
//! one exact-size sorted vector, and more in a `BTreeMap`, where inserting stays logarithmic.

use std::collections::btree_map;
use std::collections::BTreeMap;
use std::ops::Bound;

use ocireg_oci::Digest;

/// Most tags kept in the sorted vector.
const SMALL: usize = 16;

/// Tag → digest, sorted by tag.
#[derive(Debug, Clone)]
pub(crate) enum Tags {
    /// Sorted by tag, no duplicates, at most [`SMALL`] entries.
    Small(Vec<(Box<str>, Digest)>),
    /// More than [`SMALL`] entries.
    Large(BTreeMap<Box<str>, Digest>),
}

impl Default for Tags {
    fn default() -> Tags {
        Tags::Small(Vec::new())
    }
}

/// The pairs of [`Tags`], in tag order.
pub(crate) enum Iter<'a> {
    Small(std::slice::Iter<'a, (Box<str>, Digest)>),
    Large(btree_map::Iter<'a, Box<str>, Digest>),
    Range(btree_map::Range<'a, Box<str>, Digest>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a Digest);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(it) => it.next().map(|(t, d)| (&**t, d)),
            Iter::Large(it) => it.next().map(|(t, d)| (&**t, d)),
            Iter::Range(it) => it.next().map(|(t, d)| (&**t, d)),
        }
    }
}

impl Tags {
    /// The digest `tag` names.
    pub fn get(&self, tag: &str) -> Option<&Digest> {
        match self {
            Tags::Small(v) => v
                .binary_search_by(|(t, _)| (**t).cmp(tag))
                .ok()
                .and_then(|i| v.get(i))
                .map(|(_, d)| d),
            Tags::Large(m) => m.get(tag),
        }
    }

    /// Whether `tag` exists.
    pub fn contains_key(&self, tag: &str) -> bool {
        self.get(tag).is_some()
    }

    /// Points `tag` at `digest`; returns the digest it named before.
    pub fn insert(&mut self, tag: impl Into<Box<str>>, digest: Digest) -> Option<Digest> {
        let tag: Box<str> = tag.into();
        match self {
            Tags::Large(m) => m.insert(tag, digest),
            Tags::Small(v) => match v.binary_search_by(|(t, _)| (**t).cmp(&*tag)) {
                Ok(i) => v.get_mut(i).map(|(_, d)| std::mem::replace(d, digest)),
                Err(i) if v.len() < SMALL => {
                    // Exact-size growth: a small repository keeps no spare room.
                    v.reserve_exact(1);
                    v.insert(i, (tag, digest));
                    None
                }
                Err(_) => {
                    let mut m: BTreeMap<Box<str>, Digest> = std::mem::take(v).into_iter().collect();
                    m.insert(tag, digest);
                    *self = Tags::Large(m);
                    None
                }
            },
        }
    }

    /// Removes `tag`; returns the digest it named.
    pub fn remove(&mut self, tag: &str) -> Option<Digest> {
        match self {
            Tags::Small(v) => {
                let i = v.binary_search_by(|(t, _)| (**t).cmp(tag)).ok()?;
                let (_, d) = v.remove(i);
                v.shrink_to_fit();
                Some(d)
            }
            Tags::Large(m) => m.remove(tag),
        }
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        match self {
            Tags::Small(v) => v.len(),
            Tags::Large(m) => m.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (tag, digest) pairs in tag order.
    pub fn iter(&self) -> Iter<'_> {
        match self {
            Tags::Small(v) => Iter::Small(v.iter()),
            Tags::Large(m) => Iter::Large(m.iter()),
        }
    }

    /// (tag, digest) pairs after `last` (all when `None`), in tag order.
    pub fn after(&self, last: Option<&str>) -> Iter<'_> {
        let Some(last) = last else {
            return self.iter();
        };
        match self {
            Tags::Small(v) => {
                let start = v.partition_point(|(t, _)| &**t <= last);
                Iter::Small(v.get(start..).unwrap_or_default().iter())
            }
            Tags::Large(m) => {
                Iter::Range(m.range::<str, _>((Bound::Excluded(last), Bound::Unbounded)))
            }
        }
    }

    /// The digests, in tag order.
    pub fn values(&self) -> impl Iterator<Item = &Digest> {
        self.iter().map(|(_, d)| d)
    }

    /// A copy as a map (for snapshots).
    pub fn to_map(&self) -> BTreeMap<String, Digest> {
        self.iter()
            .map(|(t, d)| (t.to_owned(), d.clone()))
            .collect()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a str, &'a Digest);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocireg_oci::Algorithm;

    fn digest(i: usize) -> Digest {
        Digest::compute(Algorithm::Sha256, &i.to_le_bytes())
    }

    /// Applies the same inserts and removals to `Tags` and to a `BTreeMap` and compares.
    #[test]
    fn behaves_as_a_sorted_map_below_and_above_the_switch() {
        let mut tags = Tags::default();
        let mut model: BTreeMap<String, Digest> = BTreeMap::new();
        // A fixed shuffle of 0..40 (37 is prime to 40), then half of them removed again.
        let order: Vec<usize> = (0..40).map(|i| (i * 37) % 40).collect();
        for (n, i) in order.iter().enumerate() {
            let tag = format!("t{i:02}");
            assert_eq!(
                tags.insert(tag.as_str(), digest(*i)),
                model.insert(tag, digest(*i))
            );
            assert_eq!(tags.to_map(), model);
            assert_eq!(tags.len(), n + 1);
            assert_eq!(matches!(tags, Tags::Small(_)), n < SMALL);
        }
        assert_eq!(tags.insert("t05", digest(99)), Some(digest(5)));
        model.insert("t05".to_owned(), digest(99));
        for i in order.iter().step_by(2) {
            let tag = format!("t{i:02}");
            assert_eq!(tags.remove(&tag), model.remove(&tag));
            assert_eq!(tags.remove(&tag), None);
        }
        assert_eq!(tags.to_map(), model);
        for (tag, d) in &model {
            assert_eq!(tags.get(tag), Some(d));
        }
        assert!(!tags.contains_key("t99"));
    }

    #[test]
    fn pages_start_after_the_last_tag() {
        for n in [3, SMALL + 5] {
            let mut tags = Tags::default();
            for i in 0..n {
                tags.insert(format!("t{i:02}"), digest(i));
            }
            let after: Vec<&str> = tags.after(Some("t01")).map(|(t, _)| t).collect();
            assert_eq!(after.len(), n - 2);
            assert_eq!(after.first(), Some(&"t02"));
            let between: Vec<&str> = tags.after(Some("t01x")).map(|(t, _)| t).collect();
            assert_eq!(between, after);
            assert_eq!(tags.after(None).count(), n);
            assert_eq!(tags.after(Some("zz")).count(), 0);
            assert_eq!(tags.values().count(), n);
        }
    }
}

//! `digest_reference`: digests, repository names, tags, references, and the config crate's
//! artifact references (`registry/namespace/repo[:tag][@digest]`).

use ocireg_config::{digest_problem, parse_artifact_reference};
use ocireg_oci::{Algorithm, Digest, DigestHasher, Reference, RepoName, Tag};

fn check_digest(s: &str) {
    let parsed = s.parse::<Digest>();
    if let Ok(d) = &parsed {
        assert_eq!(d.to_string(), s, "Digest Display does not round-trip");
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
        assert!(d
            .hex()
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(Digest::from_parts(d.algorithm(), &d.hex()).as_ref(), Ok(d));
        let json = serde_json::to_string(d).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Digest>(&json).ok().as_ref(), Some(d));
    }
    // The config crate's digest check accepts exactly what the OCI parser accepts.
    assert_eq!(
        digest_problem(s).is_none(),
        parsed.is_ok(),
        "digest_problem and Digest::from_str disagree on {s:?}"
    );
}

fn check_names(s: &str) {
    if let Ok(r) = s.parse::<RepoName>() {
        assert_eq!(r.as_str(), s);
        assert!(s.len() <= RepoName::MAX_LEN, "{} > MAX_LEN", s.len());
        assert!(r.components().all(|c| !c.is_empty()));
        assert_eq!(r.components().next(), Some(r.namespace()));
        assert!(RepoName::is_valid(s));
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<RepoName>(&json).ok().as_ref(),
            Some(&r)
        );
    } else {
        assert!(!RepoName::is_valid(s));
    }
    let tag = s.parse::<Tag>();
    if let Ok(t) = &tag {
        assert_eq!(t.to_string(), s);
        assert!(
            !s.is_empty() && s.len() <= Tag::MAX_LEN,
            "tag length {}",
            s.len()
        );
        assert!(!s.starts_with(['.', '-']));
    }
    assert_eq!(tag.is_ok(), Tag::is_valid(s));
    match s.parse::<Reference>() {
        Ok(r) => {
            assert_eq!(r.to_string(), s, "Reference Display does not round-trip");
            match &r {
                Reference::Tag(t) => assert_eq!(tag.as_ref(), Ok(t)),
                Reference::Digest(d) => assert_eq!(s.parse::<Digest>().as_ref(), Ok(d)),
            }
            let json = serde_json::to_string(&r).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Reference>(&json).ok(), Some(r));
        }
        Err(_) => assert!(tag.is_err() && s.parse::<Digest>().is_err()),
    }
}

fn check_artifact_reference(s: &str) {
    let Ok(r) = parse_artifact_reference(s) else {
        return;
    };
    let full = format!("{}/{}/{}:{}", r.registry, r.namespace, r.repository, r.tag);
    assert_eq!(r.full_reference, full);
    assert!(
        !r.tag.is_empty() && r.tag.len() <= Tag::MAX_LEN,
        "tag {:?}",
        r.tag
    );
    if let Some(d) = &r.digest {
        assert!(d.parse::<Digest>().is_ok(), "accepted digest {d:?}");
    }
    let again = match &r.digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    };
    let back = parse_artifact_reference(&again);
    assert_eq!(
        back.as_ref().ok(),
        Some(&r),
        "artifact reference {s:?} rebuilt as {again:?}: {back:?}"
    );
}

fn check_hashing(data: &[u8]) {
    for alg in Algorithm::ALL {
        let whole = Digest::compute(alg, data);
        assert!(whole.verify(data));
        assert_eq!(whole.to_string().parse::<Digest>().as_ref(), Ok(&whole));
        // Incremental hashing over any split equals one-shot hashing.
        let cut = data
            .first()
            .map_or(0, |&b| usize::from(b) % (data.len() + 1));
        let mut h = DigestHasher::new(alg);
        h.update(&data[..cut]);
        let snapshot = h.clone();
        h.update(&data[cut..]);
        assert_eq!(h.bytes_hashed(), data.len() as u64);
        assert_eq!(h.finish(), whole);
        assert_eq!(snapshot.finish(), Digest::compute(alg, &data[..cut]));
    }
}

/// Parses the input as a digest, repository name, tag, reference and artifact reference:
/// accepted values must print back to the input (or to an equal value), respect the length
/// limits, and the parsers that share a grammar must agree. Also checks incremental hashing.
pub fn digest_reference(data: &[u8]) {
    let s = crate::text(data);
    check_digest(&s);
    check_names(&s);
    check_artifact_reference(&s);
    // Each line on its own too, so seeds can hold several values.
    if s.contains('\n') {
        for line in s.lines() {
            check_digest(line);
            check_names(line);
            check_artifact_reference(line);
        }
    }
    check_hashing(data);
}

//! Content discovery: tags list (sorted, `n`, `last`, `Link`), catalog with pagination.

use crate::common::*;

fn tags_of(r: &Reply) -> Vec<String> {
    let v = r.json();
    match &v["tags"] {
        serde_json::Value::Null => Vec::new(),
        t => serde_json::from_value(t.clone()).unwrap_or_else(|e| panic!("tags field {t}: {e}")),
    }
}

/// Parses `Link: <url>; rel="next"` and returns the URL part.
fn next_link(r: &Reply) -> Option<String> {
    let link = r.ho("Link")?;
    assert!(
        link.contains("rel=\"next\"") || link.contains("rel=next"),
        "Link header without rel=\"next\": {link}"
    );
    let start = link
        .find('<')
        .unwrap_or_else(|| panic!("Link without <...>: {link}"));
    let end = link
        .find('>')
        .unwrap_or_else(|| panic!("Link without <...>: {link}"));
    Some(link[start + 1..end].to_string())
}

/// Pushes one small image and tags it with every tag (in the given order).
fn tag_all(srv: &Server, c: &reqwest::blocking::Client, repo: &str, tags: &[&str]) {
    let img = push_image(srv, c, repo, tags[0], 1);
    for t in &tags[1..] {
        put_manifest(srv, c, repo, t, OCI_MANIFEST, &img.manifest).expect(201, "PUT tag");
    }
}

/// Lowercase tags only, so byte order and the spec's case-insensitive "lexical order" agree.
const TAGS: &[&str] = &[
    "v2", "latest", "1.0", "v10", "a-b", "a_b", "v1", "1.0.1", "z", "a.b", "0",
];

fn sorted_tags() -> Vec<String> {
    let mut v: Vec<String> = TAGS.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn tags_list_sorted() {
    let srv = Server::start();
    let c = client();
    tag_all(&srv, &c, "disc/tags", TAGS);
    let r = get(&srv, &c, "/v2/disc/tags/tags/list").expect(200, "GET tags/list");
    assert_eq!(r.json()["name"], "disc/tags", "tags list name field");
    let mut got = tags_of(&r);
    if got != sorted_tags() && skip_on_reference("Distribution 2.8.2 does not sort the tag list") {
        got.sort();
        assert_eq!(got, sorted_tags(), "reference: same set of tags");
        return;
    }
    assert_eq!(
        got,
        sorted_tags(),
        "tags must be complete and in lexical order"
    );
}

#[test]
fn tags_list_pagination() {
    if skip_on_reference("Distribution 2.8.2 ignores n/last on tags/list (spec v1.1 requires them)")
    {
        return;
    }
    let srv = Server::start();
    let c = client();
    tag_all(&srv, &c, "disc/page", TAGS);
    let all = sorted_tags();

    let r = get(&srv, &c, "/v2/disc/page/tags/list?n=3").expect(200, "tags n=3");
    assert_eq!(tags_of(&r), all[..3].to_vec(), "first page");
    // Follow Link headers to the end.
    let mut collected = tags_of(&r);
    let mut next = next_link(&r).expect("Link header on a partial tags page");
    let mut pages = 1;
    loop {
        let r = Reply::of(c.get(srv.resolve(&next)).send().unwrap()).expect(200, "GET Link next");
        let t = tags_of(&r);
        assert!(t.len() <= 3, "page larger than n: {t:?}");
        collected.extend(t);
        pages += 1;
        assert!(pages < 20, "pagination does not end");
        match next_link(&r) {
            Some(n) => next = n,
            None => break,
        }
    }
    assert_eq!(collected, all, "all pages concatenated");

    // `last` alone and with `n`.
    let r = get(&srv, &c, "/v2/disc/page/tags/list?last=latest").expect(200, "tags last=latest");
    let expect: Vec<String> = all
        .iter()
        .filter(|t| t.as_str() > "latest")
        .cloned()
        .collect();
    assert_eq!(tags_of(&r), expect, "tags after `latest`");
    let r = get(&srv, &c, "/v2/disc/page/tags/list?n=2&last=a_b").expect(200, "tags n=2&last=a_b");
    let expect: Vec<String> = all
        .iter()
        .filter(|t| t.as_str() > "a_b")
        .take(2)
        .cloned()
        .collect();
    assert_eq!(tags_of(&r), expect);
    // `n` larger than the list: everything, no Link.
    let r = get(&srv, &c, "/v2/disc/page/tags/list?n=1000").expect(200, "tags n=1000");
    assert_eq!(tags_of(&r), all);
    assert!(r.ho("Link").is_none(), "no Link when the list is complete");
    // n=0: empty list, no Link.
    let r = get(&srv, &c, "/v2/disc/page/tags/list?n=0").expect(200, "tags n=0");
    assert!(tags_of(&r).is_empty(), "n=0 must return an empty list");
    assert!(r.ho("Link").is_none(), "n=0 must not include a Link header");
    // `last` past the end: empty.
    let r = get(&srv, &c, "/v2/disc/page/tags/list?last=zzz").expect(200, "tags last=zzz");
    assert!(tags_of(&r).is_empty());
}

#[test]
fn tags_list_unknown_repository() {
    let srv = Server::start();
    let c = client();
    get(&srv, &c, "/v2/disc/nothing-here/tags/list").expect_error(
        404,
        "NAME_UNKNOWN",
        "tags of unknown repo",
    );
}

#[test]
fn catalog_with_pagination() {
    let srv = Server::start();
    let c = client();
    let mut repos = vec!["cat/b", "cat/a", "cat/c/deep", "cat/d", "zzz", "aaa/x"];
    for r in &repos {
        push_image(&srv, &c, r, "t", 0);
    }
    repos.sort();
    let r = get(&srv, &c, "/v2/_catalog").expect(200, "GET /v2/_catalog");
    let all: Vec<String> = serde_json::from_value(r.json()["repositories"].clone()).unwrap();
    assert_eq!(all, repos, "catalog lists every repository, sorted");

    let r = get(&srv, &c, "/v2/_catalog?n=2").expect(200, "catalog n=2");
    let mut collected: Vec<String> =
        serde_json::from_value(r.json()["repositories"].clone()).unwrap();
    assert_eq!(collected, repos[..2].to_vec());
    let mut next = next_link(&r).expect("Link header on a partial catalog page");
    for _ in 0..20 {
        let r =
            Reply::of(c.get(srv.resolve(&next)).send().unwrap()).expect(200, "catalog next page");
        let page: Vec<String> = serde_json::from_value(r.json()["repositories"].clone()).unwrap();
        assert!(page.len() <= 2);
        collected.extend(page);
        match next_link(&r) {
            Some(n) => next = n,
            None => break,
        }
    }
    assert_eq!(collected, repos, "catalog pages concatenated");
    let r = get(&srv, &c, "/v2/_catalog?n=10&last=cat/b").expect(200, "catalog last=cat/b");
    let page: Vec<String> = serde_json::from_value(r.json()["repositories"].clone()).unwrap();
    let expect: Vec<String> = repos
        .iter()
        .filter(|x| **x > "cat/b")
        .map(|s| s.to_string())
        .collect();
    assert_eq!(page, expect);
}

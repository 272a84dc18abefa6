//! Hostile request bodies and upload sessions: lying or huge Content-Length, truncated bodies
//! and chunks, absurd Content-Range values, sessions used through another repository.

use super::hostile::{client_error, if_answered, status_in, Checker};
use crate::common::raw::{self, RawReply};
use crate::common::*;

fn put_head(loc_path: &str, digest: &str, len: &str) -> String {
    let sep = if loc_path.contains('?') { '&' } else { '?' };
    format!("PUT {loc_path}{sep}digest={digest} HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}")
}

fn path_of(srv: &Server, loc: &str) -> String {
    let u = reqwest::Url::parse(&srv.resolve(loc)).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// One repository and one blob's bytes, sent with lying Content-Length values.
struct Lengths<'a> {
    srv: &'a Server,
    c: &'a reqwest::blocking::Client,
    repo: &'static str,
    data: Vec<u8>,
    d: String,
}

impl Lengths<'_> {
    /// The closing PUT of a fresh upload session with the blob's bytes under `Content-Length:
    /// len`; `close_write` ends the body there (EOF).
    fn put(&self, len: &str, close_write: bool) -> Result<RawReply, String> {
        let loc = path_of(self.srv, &start_upload(self.srv, self.c, self.repo));
        let head = put_head(&loc, &self.d, len);
        raw::send(self.srv.addr, &head, &self.data, close_write)
    }

    /// Checks that the blob was not committed.
    fn not_visible(&self, ck: &mut Checker, label: &str) {
        let r = head(
            self.srv,
            self.c,
            &format!("/v2/{}/blobs/{}", self.repo, self.d),
        );
        ck.check(
            label,
            if r.status == 404 {
                Ok(())
            } else {
                Err(format!("blob visible: HEAD {}", r.status))
            },
        );
    }
}

/// Refused without committing anything, or cut off.
/// A refusal: any 4xx, or 507 Insufficient Storage for a declared length larger than the free
/// space (refused before the body is read); never a server fault, never 201.
fn not_created(status: u16) -> bool {
    (status < 500 && status != 201) || status == 507
}

#[test]
fn lying_and_huge_content_length() {
    let mut srv = Server::start();
    let c = client();
    let data = random_bytes(10_000);
    let t = Lengths {
        srv: &srv,
        c: &c,
        repo: "hostile/len",
        d: sha256(&data),
        data,
    };
    push_blob(&srv, &c, t.repo, b"repo exists");
    let mut ck = Checker::new(&[]);
    short_and_truncated_bodies(&t, &mut ck);
    for len in ["1099511627776000", "18446744073709551615"] {
        huge_declared_length(&t, &mut ck, len);
    }
    get(&srv, &c, &format!("/v2/{}/manifests/huge", t.repo))
        .expect(404, "no manifest from a truncated PUT");
    // Garbage Content-Length values are a 400, not a dropped connection.
    for bad in ["abc", "-1", "1e3"] {
        ck.check(
            &format!("Content-Length {bad}"),
            status_in(&t.put(bad, false), &[400]),
        );
    }
    t.not_visible(&mut ck, "after garbage lengths");
    srv.assert_alive();
    ck.finish();
}

/// Content-Length shorter than the body, and longer than the body followed by EOF.
fn short_and_truncated_bodies(t: &Lengths, ck: &mut Checker) {
    // The server hashes the first 5000 bytes only.
    ck.check(
        "short Content-Length",
        client_error(
            &t.put("5000", false),
            &[(
                400,
                &["DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID"],
            )],
        ),
    );
    t.not_visible(ck, "short Content-Length: blob not committed");
    ck.check(
        "truncated body status",
        if_answered(&t.put("20000", true), not_created),
    );
    t.not_visible(ck, "truncated body: blob not committed");
}

/// A huge declared Content-Length with a short body and EOF: on a closing PUT, on a single POST
/// and on a manifest PUT.
fn huge_declared_length(t: &Lengths, ck: &mut Checker, len: &str) {
    ck.check(
        &format!("huge Content-Length {len} status"),
        if_answered(&t.put(len, true), not_created),
    );
    t.not_visible(
        ck,
        &format!("huge Content-Length {len}: blob not committed"),
    );
    let r = raw::send(
        t.srv.addr,
        &format!(
            "POST /v2/{}/blobs/uploads/?digest={} HTTP/1.1\r\nContent-Length: {len}",
            t.repo, t.d
        ),
        &t.data,
        true,
    );
    ck.check(
        &format!("single POST huge {len}"),
        if_answered(&r, not_created),
    );
    t.not_visible(
        ck,
        &format!("single POST huge Content-Length {len}: blob not committed"),
    );
    let r = raw::send(
        t.srv.addr,
        &format!(
            "PUT /v2/{}/manifests/huge HTTP/1.1\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {len}",
            t.repo
        ),
        b"{\"schemaVersion\":2",
        true,
    );
    ck.check(
        &format!("manifest huge {len}"),
        if_answered(&r, |s| (400..500).contains(&s)),
    );
}

#[test]
fn truncated_chunk_leaves_a_consistent_session() {
    let mut srv = Server::start();
    let c = client();
    let repo = "hostile/chunk";
    let data = random_bytes(50_000);
    let d = sha256(&data);
    let loc = start_upload(&srv, &c, repo);
    let r = c
        .patch(&loc)
        .header("Content-Range", "0-19999")
        .header("Content-Length", "20000")
        .body(data[..20_000].to_vec())
        .send()
        .unwrap();
    let r = Reply::of(r).expect(202, "first PATCH");
    let loc = srv.resolve(&r.h("Location"));
    // Second chunk announces 30000 bytes, sends 10000, then EOF.
    let head =
        format!("PATCH {} HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Range: 20000-49999\r\nContent-Length: 30000", path_of(&srv, &loc));
    let r = raw::send(srv.addr, &head, &data[20_000..30_000], true);
    if let Ok(r) = &r {
        assert!(r.status < 500, "truncated PATCH answered {}", r.status);
    }
    head_blob_absent(&srv, &c, repo, &d);
    // Resume from whatever offset the server reports; the result must be exact.
    let r = Reply::of(c.get(&loc).send().unwrap());
    if r.status == 404 {
        // Session discarded: acceptable; a fresh upload works.
        push_blob(&srv, &c, repo, &data);
    } else {
        let r = r.expect(204, "status after truncated PATCH");
        let range = r.h("Range");
        let end: usize = range
            .strip_prefix("0-")
            .and_then(|e| e.parse().ok())
            .unwrap_or_else(|| panic!("Range {range}"));
        assert!(
            end == 19_999 || (20_000..30_000).contains(&end),
            "offset after truncated PATCH: Range {range}"
        );
        let loc = srv.resolve(&r.h("Location"));
        let r = c
            .patch(&loc)
            .header("Content-Range", format!("{}-49999", end + 1))
            .header("Content-Length", (49_999 - end).to_string())
            .body(data[end + 1..].to_vec())
            .send()
            .unwrap();
        let r = Reply::of(r).expect(202, "resume PATCH");
        let loc = srv.resolve(&r.h("Location"));
        Reply::of(c.put(with_query(&loc, "digest", &d)).send().unwrap())
            .expect(201, "closing PUT after resume");
    }
    assert_blob(&srv, &c, repo, &d, &data);
    srv.assert_alive();
}

fn head_blob_absent(srv: &Server, c: &reqwest::blocking::Client, repo: &str, d: &str) {
    head(srv, c, &format!("/v2/{repo}/blobs/{d}"))
        .expect(404, "blob must not exist before the upload completes");
}

#[test]
fn upload_sessions_are_bound_to_their_repository() {
    let mut srv = Server::start();
    let c = client();
    push_blob(&srv, &c, "hostile/other", b"x");
    let loc = start_upload(&srv, &c, "hostile/owner");
    let p = path_of(&srv, &loc);
    let stolen = p.replacen("/v2/hostile/owner/", "/v2/hostile/other/", 1);
    assert_ne!(p, stolen);
    let data = b"smuggled".to_vec();
    // Distribution 2.8.2 answers 404 with BLOB_UPLOAD_INVALID (a 404 should carry BLOB_UPLOAD_UNKNOWN).
    let mut ck = Checker::new(&["foreign session"]);
    const UNKNOWN: &[(u16, &[&str])] = &[
        (404, &["BLOB_UPLOAD_UNKNOWN"]),
        (400, &["BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN"]),
    ];
    let r = raw::get(srv.addr, "GET", &stolen);
    ck.check("foreign session GET", client_error(&r, UNKNOWN));
    let r = raw::send(
        srv.addr,
        &put_head(&stolen, &sha256(&data), &data.len().to_string()),
        &data,
        false,
    );
    ck.check("foreign session PUT", client_error(&r, UNKNOWN));
    head(
        &srv,
        &c,
        &format!("/v2/hostile/other/blobs/{}", sha256(&data)),
    )
    .expect(404, "smuggled blob");
    head(
        &srv,
        &c,
        &format!("/v2/hostile/owner/blobs/{}", sha256(&data)),
    )
    .expect(404, "smuggled blob (owner)");
    srv.assert_alive();
    ck.finish();
}

#[test]
fn huge_content_range_values() {
    let mut srv = Server::start();
    let c = client();
    // Distribution 2.8.2 ignores Content-Range on PATCH.
    let mut ck = Checker::new(&["range "]);
    for range in [
        "0-18446744073709551615",
        "18446744073709551615-18446744073709551615",
        "0-99999999999999999999999",
    ] {
        let loc = start_upload(&srv, &c, "hostile/range");
        let head = format!(
            "PATCH {} HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Range: {range}\r\nContent-Length: 5",
            path_of(&srv, &loc)
        );
        let r = raw::send(srv.addr, &head, b"hello", false);
        ck.check(
            &format!("range {range}: PATCH with 5 bytes"),
            status_in(&r, &[400, 416]),
        );
    }
    srv.assert_alive();
    ck.finish();
}

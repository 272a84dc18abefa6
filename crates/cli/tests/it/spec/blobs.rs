//! `/v2/`, blob GET/HEAD/Range/DELETE, sha512 blobs, repository scoping of blobs.

use crate::common::*;

#[test]
fn api_version_check() {
    let srv = Server::start();
    let c = client();
    let r = get(&srv, &c, "/v2/").expect(200, "GET /v2/");
    assert_eq!(
        r.h("Docker-Distribution-API-Version"),
        "registry/2.0",
        "GET /v2/ Docker-Distribution-API-Version"
    );
    let r = head(&srv, &c, "/v2/").expect(200, "HEAD /v2/");
    assert!(r.body.is_empty());
    // Without the trailing slash too (clients use both).
    Reply::of(c.get(srv.url("/v2")).send().unwrap()).expect_in(
        &[200, 301, 308],
        "GET /v2 (no slash): 200 or a redirect to /v2/",
    );
}

#[test]
fn blob_get_and_head() {
    let srv = Server::start();
    let c = client();
    let data = random_bytes(70_000);
    let d = push_blob(&srv, &c, "spec/blobs", &data);
    let path = format!("/v2/spec/blobs/blobs/{d}");

    let r = head(&srv, &c, &path).expect(200, "HEAD existing blob");
    assert_eq!(
        r.h("Content-Length"),
        data.len().to_string(),
        "HEAD blob Content-Length"
    );
    assert_eq!(
        r.h("Docker-Content-Digest"),
        d,
        "HEAD blob Docker-Content-Digest"
    );
    assert!(r.body.is_empty(), "HEAD must not return a body");

    let r = get(&srv, &c, &path).expect(200, "GET existing blob");
    assert_eq!(r.body, data, "GET blob returns the exact bytes");
    assert_eq!(
        r.h("Content-Length"),
        data.len().to_string(),
        "GET blob Content-Length"
    );
    assert_eq!(
        r.h("Docker-Content-Digest"),
        d,
        "GET blob Docker-Content-Digest"
    );
    assert_eq!(
        r.h("Content-Type"),
        "application/octet-stream",
        "GET blob Content-Type"
    );
}

#[test]
fn blob_unknown_is_404_blob_unknown() {
    let srv = Server::start();
    let c = client();
    push_blob(&srv, &c, "spec/known", b"something");
    let missing = sha256(b"never pushed");
    get(&srv, &c, &format!("/v2/spec/known/blobs/{missing}")).expect_error(
        404,
        "BLOB_UNKNOWN",
        "GET unknown blob",
    );
    let r =
        head(&srv, &c, &format!("/v2/spec/known/blobs/{missing}")).expect(404, "HEAD unknown blob");
    assert!(r.body.is_empty());
    // In a repository that does not exist at all.
    get(&srv, &c, &format!("/v2/spec/nowhere/blobs/{missing}")).expect_error_in(
        404,
        &["BLOB_UNKNOWN", "NAME_UNKNOWN"],
        "GET blob in unknown repo",
    );
}

#[test]
fn blobs_are_scoped_to_their_repository() {
    let srv = Server::start();
    let c = client();
    let data = random_bytes(1000);
    let d = push_blob(&srv, &c, "spec/owner", &data);
    push_blob(&srv, &c, "spec/other", b"make the other repo exist");
    get(&srv, &c, &format!("/v2/spec/other/blobs/{d}")).expect_error(
        404,
        "BLOB_UNKNOWN",
        "GET a blob through a repository it was never pushed or mounted to",
    );
    head(&srv, &c, &format!("/v2/spec/other/blobs/{d}")).expect(404, "HEAD blob of another repo");
}

#[test]
fn blob_range_requests() {
    let srv = Server::start();
    let c = client();
    let data = random_bytes(10_000);
    let d = push_blob(&srv, &c, "spec/range", &data);
    let url = srv.url(&format!("/v2/spec/range/blobs/{d}"));
    let total = data.len();

    // (Range, status, the bytes served, Content-Range); a last-byte-pos past the end is
    // clamped (RFC 9110 14.1.2).
    let cases: [(&str, u16, Option<&[u8]>, String); 5] = [
        (
            "bytes=100-199",
            206,
            Some(&data[100..200]),
            format!("bytes 100-199/{total}"),
        ),
        (
            "bytes=9990-",
            206,
            Some(&data[9990..]),
            format!("bytes 9990-9999/{total}"),
        ),
        (
            "bytes=-5",
            206,
            Some(&data[total - 5..]),
            format!("bytes 9995-9999/{total}"),
        ),
        (
            "bytes=9998-20000",
            206,
            Some(&data[9998..]),
            format!("bytes 9998-9999/{total}"),
        ),
        ("bytes=10000-10010", 416, None, format!("bytes */{total}")),
    ];
    for (range, status, body, content_range) in cases {
        let r = Reply::of(c.get(&url).header("Range", range).send().unwrap())
            .expect(status, &format!("Range {range}"));
        if let Some(body) = body {
            assert!(r.body == body, "Range {range}: other bytes");
        }
        assert_eq!(r.h("Content-Range"), content_range, "Range {range}");
    }
    let r = Reply::of(c.get(&url).header("Range", "bytes=100-199").send().unwrap());
    assert_eq!(r.h("Content-Length"), "100");
    let r = Reply::of(c.get(&url).header("Range", "bytes=50000-").send().unwrap());
    assert_eq!(r.status, 416, "unsatisfiable open Range");
}

#[test]
fn blob_delete() {
    let srv = Server::start();
    let c = client();
    let data = random_bytes(5000);
    let d = push_blob(&srv, &c, "spec/del", &data);
    let path = format!("/v2/spec/del/blobs/{d}");
    delete(&srv, &c, &path).expect(202, "DELETE blob");
    get(&srv, &c, &path).expect_error(404, "BLOB_UNKNOWN", "GET deleted blob");
    head(&srv, &c, &path).expect(404, "HEAD deleted blob");
    delete(&srv, &c, &path).expect_error(404, "BLOB_UNKNOWN", "DELETE already deleted blob");
    // It can be pushed again.
    push_blob(&srv, &c, "spec/del", &data);
    assert_eq!(
        get(&srv, &c, &path).expect(200, "GET re-pushed blob").body,
        data
    );
}

#[test]
fn blob_delete_in_one_repo_keeps_it_in_another() {
    let srv = Server::start();
    let c = client();
    let data = random_bytes(3000);
    let d = push_blob(&srv, &c, "spec/a", &data);
    push_blob(&srv, &c, "spec/b", &data);
    delete(&srv, &c, &format!("/v2/spec/a/blobs/{d}")).expect(202, "DELETE blob from repo a");
    get(&srv, &c, &format!("/v2/spec/a/blobs/{d}")).expect(404, "GET deleted blob in a");
    let r =
        get(&srv, &c, &format!("/v2/spec/b/blobs/{d}")).expect(200, "GET blob still linked in b");
    assert_eq!(r.body, data);
}

#[test]
fn blob_sha512() {
    if skip_on_reference("v1.1-only: sha512 digests") {
        return;
    }
    let srv = Server::start();
    let c = client();
    let data = random_bytes(40_000);
    let d = sha512(&data);
    let loc = start_upload(&srv, &c, "spec/sha512");
    let r = put_upload(&c, &loc, &d, &data).expect(201, "PUT sha512 blob");
    assert_eq!(
        r.h("Docker-Content-Digest"),
        d,
        "sha512 blob Docker-Content-Digest"
    );
    let path = format!("/v2/spec/sha512/blobs/{d}");
    let r = get(&srv, &c, &path).expect(200, "GET sha512 blob");
    assert_eq!(r.body, data);
    assert_eq!(r.h("Docker-Content-Digest"), d);
    let r = head(&srv, &c, &path).expect(200, "HEAD sha512 blob");
    assert_eq!(r.h("Content-Length"), data.len().to_string());
    // Wrong sha512 is rejected.
    let loc = start_upload(&srv, &c, "spec/sha512");
    let wrong = sha512(b"other");
    Reply::of(
        c.put(with_query(&loc, "digest", &wrong))
            .body(data.clone())
            .send()
            .unwrap(),
    )
    .expect_error(400, "DIGEST_INVALID", "PUT with a wrong sha512 digest");
    head(&srv, &c, &format!("/v2/spec/sha512/blobs/{wrong}")).expect(404, "HEAD wrong sha512 blob");
}

#[test]
fn concurrent_push_of_same_blob_to_many_repos() {
    let srv = Server::start();
    let data = random_bytes(512 * 1024);
    let d = sha256(&data);
    std::thread::scope(|s| {
        for i in 0..8 {
            let (srv, data) = (&srv, &data);
            s.spawn(move || {
                let c = client();
                push_blob(srv, &c, &format!("spec/same{i}"), data);
            });
        }
    });
    let c = client();
    for i in 0..8 {
        let r = get(&srv, &c, &format!("/v2/spec/same{i}/blobs/{d}"))
            .expect(200, "GET concurrently pushed blob");
        assert_eq!(r.body, data, "repo spec/same{i}");
    }
    // One copy on disk, however many repositories link it.
    if skip_on_replicas("counts the blob's copies in the storage directory") {
        return;
    }
    assert_eq!(
        count_copies(&srv.root, &data),
        1,
        "stored copies of a blob pushed to 8 repositories"
    );
}

#[test]
fn large_blob_round_trip() {
    let srv = Server::start();
    let c = client();
    let data = random_bytes(40 * 1024 * 1024 + 3);
    let d = push_blob(&srv, &c, "spec/large", &data);
    let path = format!("/v2/spec/large/blobs/{d}");
    let r = get(&srv, &c, &path).expect(200, "GET 40 MiB blob");
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "40 MiB blob bytes differ");
    let r = Reply::of(
        c.get(srv.url(&path))
            .header("Range", "bytes=33554432-33554531")
            .send()
            .unwrap(),
    )
    .expect(206, "Range deep inside a large blob");
    assert_eq!(r.body, &data[33_554_432..33_554_532]);
    // The same content in 8 MiB chunks into another repository.
    let mut loc = start_upload(&srv, &c, "spec/large2");
    let mut off = 0usize;
    for chunk in data.chunks(8 * 1024 * 1024) {
        let end = off + chunk.len() - 1;
        let r = Reply::of(
            c.patch(&loc)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{off}-{end}"))
                .body(chunk.to_vec())
                .send()
                .unwrap(),
        )
        .expect(202, "PATCH 8 MiB chunk");
        loc = srv.resolve(&r.h("Location"));
        off = end + 1;
    }
    Reply::of(c.put(with_query(&loc, "digest", &d)).send().unwrap()).expect(201, "closing PUT");
    let r = get(&srv, &c, &format!("/v2/spec/large2/blobs/{d}")).expect(200, "GET chunked 40 MiB");
    assert!(r.body == data, "chunked 40 MiB blob bytes differ");
}

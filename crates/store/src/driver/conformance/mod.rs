//! The shared driver test suite: every [`Driver`] must pass [`run_all`].
//!
//! Each check returns `Err(description)` instead of panicking, so the suite can live in the
//! library and be reused by out-of-tree drivers. Run it on an empty store.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{Driver, Publication};
use crate::error::StoreError;
use crate::ByteStream;

/// Outcome of one check.
pub type CheckResult = Result<(), String>;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

mod conditional;
pub use conditional::{conditional_puts, racing_conditional_puts};

/// Runs every check against `driver`, stopping at the first failure.
pub async fn run_all(driver: Arc<dyn Driver>) -> CheckResult {
    let d = driver.as_ref();
    content_roundtrip(d).await?;
    missing_objects(d).await?;
    invalid_keys(d).await?;
    reader_ranges(d).await?;
    writer_append_and_resume(d).await?;
    list_and_walk(d).await?;
    move_object(d).await?;
    put_ordered_groups(d).await?;
    publish(d).await?;
    scratch_deletes(d).await?;
    delete_objects(d).await?;
    concurrent_puts(Arc::clone(&driver)).await?;
    conditional_puts(d).await?;
    racing_conditional_puts(Arc::clone(&driver)).await?;
    Ok(())
}

async fn collect(stream: ByteStream) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(fail("stream chunk"))?);
    }
    Ok(out)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// put/get round trip, overwrite, empty objects, deep keys, stat.
pub async fn content_roundtrip(d: &dyn Driver) -> CheckResult {
    let key = "rt/a/b/c/object";
    d.put_content(key, Bytes::from_static(b"hello"))
        .await
        .map_err(fail("put"))?;
    let got = d.get_content(key).await.map_err(fail("get"))?;
    check!(got.as_ref() == b"hello", "get returned {got:?}");
    d.put_content(key, Bytes::from_static(b"bye"))
        .await
        .map_err(fail("overwrite"))?;
    let got = d.get_content(key).await.map_err(fail("get"))?;
    check!(got.as_ref() == b"bye", "overwrite not visible: {got:?}");
    let meta = d.stat(key).await.map_err(fail("stat"))?;
    check!(meta.size == 3, "stat size {} != 3", meta.size);
    check!(meta.key == key, "stat key {}", meta.key);
    let age = std::time::SystemTime::now()
        .duration_since(meta.modified)
        .unwrap_or_default();
    check!(age.as_secs() < 300, "modified time is off by {age:?}");
    d.put_content("rt/empty", Bytes::new())
        .await
        .map_err(fail("put empty"))?;
    let got = d.get_content("rt/empty").await.map_err(fail("get empty"))?;
    check!(got.is_empty(), "empty object has {} bytes", got.len());
    let big = pattern(3 << 20, 7);
    d.put_content("rt/big", Bytes::from(big.clone()))
        .await
        .map_err(fail("put big"))?;
    let got = d.get_content("rt/big").await.map_err(fail("get big"))?;
    check!(got.as_ref() == big.as_slice(), "big object corrupted");
    check!(
        d.stat("rt/a").await.is_err_and(|e| e.is_not_found()),
        "stat of a directory-like prefix must be NotFound"
    );
    Ok(())
}

/// Missing objects answer `NotFound` everywhere.
pub async fn missing_objects(d: &dyn Driver) -> CheckResult {
    let nf = |r: Result<(), StoreError>| r.is_err_and(|e| e.is_not_found());
    check!(
        nf(d.get_content("nope/x").await.map(drop)),
        "get missing: not NotFound"
    );
    check!(
        nf(d.stat("nope/x").await.map(drop)),
        "stat missing: not NotFound"
    );
    check!(
        nf(d.reader("nope/x", 0, None).await.map(drop)),
        "reader missing: not NotFound"
    );
    check!(nf(d.delete("nope/x").await), "delete missing: not NotFound");
    check!(
        nf(d.move_object("nope/x", "nope/y").await),
        "move missing: not NotFound"
    );
    let listed = d.list("nope").await.map_err(fail("list missing"))?;
    check!(listed.is_empty(), "list of missing prefix: {listed:?}");
    let walked = d.walk("nope").await.map_err(fail("walk missing"))?;
    check!(walked.is_empty(), "walk of missing prefix: {walked:?}");
    Ok(())
}

/// Keys with empty, relative or hidden components are refused.
pub async fn invalid_keys(d: &dyn Driver) -> CheckResult {
    for key in [
        "",
        "/abs",
        "a//b",
        "../x",
        "a/./b",
        "a/..",
        ".tmp/x",
        "a/.hidden",
        "a\\b",
    ] {
        let r = d.put_content(key, Bytes::from_static(b"x")).await;
        check!(
            matches!(r, Err(StoreError::InvalidKey { .. })),
            "put {key:?} was not refused: {r:?}"
        );
        let r = d.get_content(key).await;
        check!(
            matches!(r, Err(StoreError::InvalidKey { .. })),
            "get {key:?} was not refused"
        );
    }
    Ok(())
}

/// Readers honour offset/length and refuse ranges outside the object.
pub async fn reader_ranges(d: &dyn Driver) -> CheckResult {
    let data = pattern((2 << 20) + 12345, 3);
    d.put_content("rd/obj", Bytes::from(data.clone()))
        .await
        .map_err(fail("put"))?;
    let (size, body) = d.reader("rd/obj", 0, None).await.map_err(fail("reader"))?;
    check!(size == data.len() as u64, "reader size {size}");
    check!(collect(body).await? == data, "full read differs");
    let (_, body) = d
        .reader("rd/obj", 1_000_000, Some(1_050_000))
        .await
        .map_err(fail("ranged reader"))?;
    check!(
        collect(body).await? == data[1_000_000..2_050_000],
        "ranged read differs"
    );
    let end = data.len() as u64;
    let (_, body) = d
        .reader("rd/obj", end, None)
        .await
        .map_err(fail("at end"))?;
    check!(collect(body).await?.is_empty(), "read at end not empty");
    for (offset, len) in [(end + 1, None), (0, Some(end + 1)), (end - 1, Some(2))] {
        let r = d.reader("rd/obj", offset, len).await;
        check!(
            matches!(r, Err(StoreError::RangeInvalid { .. })),
            "range {offset}+{len:?} accepted"
        );
    }
    local_file(d, "rd/obj", &data).await
}

/// A driver that offers an object as a local file offers exactly its bytes, and an absent
/// object is not found.
async fn local_file(d: &dyn Driver, key: &str, data: &[u8]) -> CheckResult {
    use std::io::Read;
    let Some(mut file) = d.open_file(key).await.map_err(fail("open_file"))? else {
        return Ok(());
    };
    let mut got = Vec::new();
    file.read_to_end(&mut got)
        .map_err(fail("read the local file"))?;
    check!(got == data, "local file differs from the object");
    let missing = d.open_file("rd/missing").await;
    check!(
        matches!(&missing, Err(e) if e.is_not_found()),
        "absent object opened: {missing:?}"
    );
    Ok(())
}

/// Writers append across instances, truncate without append, and cancel deletes.
pub async fn writer_append_and_resume(d: &dyn Driver) -> CheckResult {
    let key = "wr/session/data";
    let mut w = d.writer(key, true).await.map_err(fail("writer"))?;
    let first = pattern(1 << 20, 1);
    let second = pattern(777, 2);
    w.write(vec![
        Bytes::copy_from_slice(&first[..1000]),
        Bytes::copy_from_slice(&first[1000..]),
    ])
    .await
    .map_err(fail("write"))?;
    check!(
        w.size() == first.len() as u64,
        "size after write {}",
        w.size()
    );
    let size = w.commit().await.map_err(fail("commit"))?;
    check!(size == first.len() as u64, "commit size {size}");
    let mut w = d.writer(key, true).await.map_err(fail("append writer"))?;
    check!(
        w.size() == first.len() as u64,
        "append writer starts at {}",
        w.size()
    );
    w.write(vec![Bytes::from(second.clone())])
        .await
        .map_err(fail("append"))?;
    w.write(Vec::new()).await.map_err(fail("empty write"))?;
    let size = w.close().await.map_err(fail("close"))?;
    let mut expected = first.clone();
    expected.extend_from_slice(&second);
    check!(size == expected.len() as u64, "close size {size}");
    let got = d.get_content(key).await.map_err(fail("get"))?;
    check!(
        got.as_ref() == expected.as_slice(),
        "appended content differs"
    );
    let meta = d.stat(key).await.map_err(fail("stat"))?;
    check!(meta.size == expected.len() as u64, "stat after append");

    let mut w = d
        .writer(key, false)
        .await
        .map_err(fail("truncating writer"))?;
    check!(w.size() == 0, "truncating writer starts at {}", w.size());
    w.write(vec![Bytes::from_static(b"new")])
        .await
        .map_err(fail("write"))?;
    w.commit().await.map_err(fail("commit"))?;
    let got = d.get_content(key).await.map_err(fail("get"))?;
    check!(
        got.as_ref() == b"new",
        "truncate failed: {} bytes",
        got.len()
    );

    let mut w = d
        .writer("wr/cancelled", false)
        .await
        .map_err(fail("writer"))?;
    w.write(vec![Bytes::from_static(b"junk")])
        .await
        .map_err(fail("write"))?;
    w.cancel().await.map_err(fail("cancel"))?;
    check!(
        d.stat("wr/cancelled")
            .await
            .is_err_and(|e| e.is_not_found()),
        "cancelled object still exists"
    );
    let w = d
        .writer("wr/fresh/deep/file", true)
        .await
        .map_err(fail("writer"))?;
    check!(w.size() == 0, "new append writer size {}", w.size());
    w.commit().await.map_err(fail("commit empty"))?;
    let meta = d
        .stat("wr/fresh/deep/file")
        .await
        .map_err(fail("stat empty"))?;
    check!(meta.size == 0, "empty committed object size {}", meta.size);
    Ok(())
}

/// `list` gives direct children; `walk` gives every object below, sorted.
pub async fn list_and_walk(d: &dyn Driver) -> CheckResult {
    for key in ["ls/b/x", "ls/a", "ls/c/d/e", "ls/c/f", "lsx/other"] {
        d.put_content(key, Bytes::from(key.as_bytes().to_vec()))
            .await
            .map_err(fail("put"))?;
    }
    let listed = d.list("ls").await.map_err(fail("list"))?;
    check!(
        listed == ["ls/a", "ls/b", "ls/c"],
        "list ls gave {listed:?}"
    );
    let listed = d.list("ls/").await.map_err(fail("list slash"))?;
    check!(
        listed == ["ls/a", "ls/b", "ls/c"],
        "list ls/ gave {listed:?}"
    );
    let root = d.list("").await.map_err(fail("list root"))?;
    check!(
        root.contains(&"ls".to_owned()) && root.contains(&"lsx".to_owned()),
        "root list {root:?}"
    );
    check!(
        root.iter().all(|k| !k.contains('/') && !k.starts_with('.')),
        "root list has nested or hidden keys: {root:?}"
    );
    let walked = d.walk("ls").await.map_err(fail("walk"))?;
    let keys: Vec<&str> = walked.iter().map(|m| m.key.as_str()).collect();
    check!(
        keys == ["ls/a", "ls/b/x", "ls/c/d/e", "ls/c/f"],
        "walk gave {keys:?}"
    );
    check!(
        walked.iter().all(|m| m.size == m.key.len() as u64),
        "walk sizes wrong"
    );
    let all = d.walk("").await.map_err(fail("walk root"))?;
    check!(
        all.iter().any(|m| m.key == "lsx/other"),
        "walk root misses lsx/other"
    );
    check!(
        all.iter()
            .all(|m| !m.key.split('/').any(|c| c.starts_with('.'))),
        "walk root shows hidden objects"
    );
    Ok(())
}

/// `move_object` replaces the destination and removes the source.
pub async fn move_object(d: &dyn Driver) -> CheckResult {
    d.put_content("mv/src", Bytes::from_static(b"payload"))
        .await
        .map_err(fail("put src"))?;
    d.put_content("mv/dst/x", Bytes::from_static(b"old"))
        .await
        .map_err(fail("put dst"))?;
    d.move_object("mv/src", "mv/dst/x")
        .await
        .map_err(fail("move over"))?;
    let got = d.get_content("mv/dst/x").await.map_err(fail("get dst"))?;
    check!(got.as_ref() == b"payload", "moved content {got:?}");
    check!(
        d.stat("mv/src").await.is_err_and(|e| e.is_not_found()),
        "source still exists after move"
    );
    d.move_object("mv/dst/x", "mv/new/deep/y")
        .await
        .map_err(fail("move to new dir"))?;
    let got = d
        .get_content("mv/new/deep/y")
        .await
        .map_err(fail("get new"))?;
    check!(got.as_ref() == b"payload", "move into new dir: {got:?}");
    Ok(())
}

/// `publish` moves a committed writer's object into place and writes its links; a failing
/// `ready` makes nothing visible and is the error returned.
pub async fn publish(d: &dyn Driver) -> CheckResult {
    let data = pattern(3000, 9);
    let digest = ocireg_oci::Digest::compute(ocireg_oci::Algorithm::Sha256, &data);
    let link = ("pb/links/a".to_owned(), Bytes::from(digest.to_string()));
    let mut w = d.writer("pb/up/1", false).await.map_err(fail("writer"))?;
    w.write(vec![Bytes::from(data.clone())])
        .await
        .map_err(fail("write"))?;
    let failing = Box::pin(async { Err(StoreError::Internal("not ready".to_owned())) });
    let publication = |ready, links| Publication {
        from: "pb/up/1",
        to: "pb/blob/x",
        digest: &digest,
        size: 3000,
        ready,
        links,
    };
    let r = d.publish(publication(failing, vec![link.clone()])).await;
    check!(
        matches!(&r, Err(StoreError::Internal(m)) if m == "not ready"),
        "publish with a failing ready: {r:?}"
    );
    for key in ["pb/blob/x", "pb/links/a"] {
        check!(
            d.stat(key).await.is_err_and(|e| e.is_not_found()),
            "{key} visible after a failed publish"
        );
    }
    let ready = Box::pin(async move { w.commit().await.map(drop) });
    d.publish(publication(ready, vec![link]))
        .await
        .map_err(fail("publish"))?;
    let got = d.get_content("pb/blob/x").await.map_err(fail("get blob"))?;
    check!(got.as_ref() == data.as_slice(), "published bytes differ");
    let got = d
        .get_content("pb/links/a")
        .await
        .map_err(fail("get link"))?;
    check!(got == digest.to_string(), "link holds {got:?}");
    check!(
        d.stat("pb/up/1").await.is_err_and(|e| e.is_not_found()),
        "source still exists after publish"
    );
    let none = Box::pin(async { Ok(()) });
    let r = d
        .publish(Publication {
            from: "pb/up/2",
            to: "pb/../x",
            digest: &digest,
            size: 0,
            ready: none,
            links: Vec::new(),
        })
        .await;
    check!(r.is_err(), "publish to an invalid key succeeded");
    Ok(())
}

/// Scratch puts store (and replace) objects in new directories; scratch deletes remove
/// prefixes like `delete` and report missing keys the same way.
pub async fn scratch_deletes(d: &dyn Driver) -> CheckResult {
    for key in ["st/a", "st/deep/b"] {
        d.put_scratch(key, Bytes::from_static(b"first"))
            .await
            .map_err(fail("put scratch"))?;
    }
    d.put_scratch("st/deep/b", Bytes::from_static(b"x"))
        .await
        .map_err(fail("put scratch again"))?;
    let got = d.get_content("st/deep/b").await.map_err(fail("get"))?;
    check!(got.as_ref() == b"x", "scratch put replaced with {got:?}");
    check!(
        d.put_scratch("st/../x", Bytes::new()).await.is_err(),
        "scratch put of an invalid key succeeded"
    );
    d.delete_scratch("st")
        .await
        .map_err(fail("delete scratch"))?;
    check!(
        d.walk("st").await.map_err(fail("walk 3"))?.is_empty(),
        "objects left after delete_scratch"
    );
    check!(
        d.delete_scratch("st")
            .await
            .is_err_and(|e| e.is_not_found()),
        "delete_scratch of a missing prefix is not NotFound"
    );
    Ok(())
}

/// `put_ordered` stores every object of every group, replacing earlier content.
pub async fn put_ordered_groups(d: &dyn Driver) -> CheckResult {
    d.put_content("po/links/b", Bytes::from_static(b"old"))
        .await
        .map_err(fail("put"))?;
    let groups = vec![
        vec![("po/data/x".to_owned(), Bytes::from_static(b"bytes"))],
        vec![
            ("po/links/a".to_owned(), Bytes::from_static(b"A")),
            ("po/links/b".to_owned(), Bytes::from_static(b"B")),
            ("po/other/deep/c".to_owned(), Bytes::new()),
        ],
    ];
    d.put_ordered(groups).await.map_err(fail("put_ordered"))?;
    for (key, want) in [
        ("po/data/x", &b"bytes"[..]),
        ("po/links/a", b"A"),
        ("po/links/b", b"B"),
        ("po/other/deep/c", b""),
    ] {
        let got = d.get_content(key).await.map_err(fail("get"))?;
        check!(got.as_ref() == want, "{key} holds {got:?}");
    }
    d.put_ordered(Vec::new())
        .await
        .map_err(fail("empty put_ordered"))?;
    let r = d
        .put_ordered(vec![vec![("po/../x".to_owned(), Bytes::new())]])
        .await;
    check!(
        matches!(r, Err(StoreError::InvalidKey { .. })),
        "put_ordered accepted an invalid key: {r:?}"
    );
    Ok(())
}

/// Deleting an object or a prefix; siblings with a common name prefix survive.
pub async fn delete_objects(d: &dyn Driver) -> CheckResult {
    for key in ["del/a/1", "del/a/2/3", "del/ab", "del/b"] {
        d.put_content(key, Bytes::from_static(b"x"))
            .await
            .map_err(fail("put"))?;
    }
    d.delete("del/b").await.map_err(fail("delete object"))?;
    check!(
        d.stat("del/b").await.is_err_and(|e| e.is_not_found()),
        "deleted object still there"
    );
    d.delete("del/a").await.map_err(fail("delete prefix"))?;
    let left = d.walk("del").await.map_err(fail("walk"))?;
    let keys: Vec<&str> = left.iter().map(|m| m.key.as_str()).collect();
    check!(keys == ["del/ab"], "after prefix delete: {keys:?}");
    // A deleted "directory" can be written again.
    d.put_content("del/a/1", Bytes::from_static(b"again"))
        .await
        .map_err(fail("put after delete"))?;
    check!(
        d.get_content("del/a/1")
            .await
            .map_err(fail("get"))?
            .as_ref()
            == b"again",
        "rewrite after delete"
    );
    Ok(())
}

/// Concurrent `put_content` on one key: the result is one of the writes, whole.
pub async fn concurrent_puts(driver: Arc<dyn Driver>) -> CheckResult {
    let values: Vec<Vec<u8>> = (0..16u8).map(|i| pattern(64 * 1024, i)).collect();
    let mut tasks = Vec::new();
    for v in values.clone() {
        let d = Arc::clone(&driver);
        tasks.push(tokio::spawn(async move {
            d.put_content("cc/key", Bytes::from(v)).await
        }));
    }
    for t in tasks {
        t.await
            .map_err(fail("task"))?
            .map_err(fail("concurrent put"))?;
    }
    let got = driver.get_content("cc/key").await.map_err(fail("get"))?;
    check!(
        values.iter().any(|v| v.as_slice() == got.as_ref()),
        "concurrent puts produced a torn object"
    );
    Ok(())
}

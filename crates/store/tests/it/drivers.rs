//! The shared driver suite against both drivers, plus filesystem crash-safety checks.

use std::sync::Arc;

use bytes::Bytes;
use ocireg_store::driver::conformance;
use ocireg_store::{Driver, FsDriver, MemoryDriver, StoreError};

use crate::common::{fresh_fs_driver, put};

#[tokio::test]
async fn memory_driver_passes_suite() {
    conformance::run_all(Arc::new(MemoryDriver::new()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_driver_passes_suite() {
    let (_dir, driver) = fresh_fs_driver().await;
    conformance::run_all(Arc::new(driver)).await.unwrap();
}

#[tokio::test]
async fn fs_leftover_temp_files_are_invisible_and_cleaned() {
    let (dir, driver) = fresh_fs_driver().await;
    put(&driver, "repo/obj", b"committed").await;
    put(&driver, "repo/deep/x", b"x").await;
    drop(driver);

    // Simulate writes interrupted by a crash: temp files that never got renamed.
    let leftovers = [
        dir.path().join("repo/.obj.0123456789abcdef.tmp"),
        dir.path().join("repo/deep/.y.fedcba9876543210.tmp"),
        dir.path().join(".top.1111.tmp"),
    ];
    for path in &leftovers {
        std::fs::write(path, b"torn write").unwrap();
    }
    // Not ours: a dot file without the temp suffix is left alone (and still invisible).
    std::fs::write(dir.path().join("repo/.keep"), b"junk").unwrap();

    // Before any cleanup: invisible through every operation.
    let driver = FsDriver::open(dir.path()).await.unwrap();
    for path in &leftovers {
        assert!(!path.exists(), "{} not cleaned on open", path.display());
    }
    assert!(dir.path().join("repo/.keep").exists());
    for key in [
        "repo/.obj.0123456789abcdef.tmp",
        "repo/.keep",
        ".top.1111.tmp",
    ] {
        assert!(matches!(
            driver.get_content(key).await,
            Err(StoreError::InvalidKey { .. })
        ));
        assert!(matches!(
            driver.stat(key).await,
            Err(StoreError::InvalidKey { .. })
        ));
    }
    assert_eq!(driver.list("").await.unwrap(), vec!["repo".to_owned()]);
    assert_eq!(
        driver.list("repo").await.unwrap(),
        vec!["repo/deep".to_owned(), "repo/obj".to_owned()]
    );
    let all: Vec<String> = driver
        .walk("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(all, vec!["repo/deep/x".to_owned(), "repo/obj".to_owned()]);
    assert_eq!(
        driver.get_content("repo/obj").await.unwrap().as_ref(),
        b"committed"
    );
}

#[tokio::test]
async fn fs_temp_files_are_invisible_while_present() {
    let (dir, driver) = fresh_fs_driver().await;
    put(&driver, "a/obj", b"v1").await;
    // A write in progress (temp file present, not yet renamed).
    std::fs::write(dir.path().join("a/.obj.abcd.tmp"), b"v2-partial").unwrap();
    assert_eq!(driver.get_content("a/obj").await.unwrap().as_ref(), b"v1");
    assert_eq!(driver.stat("a/obj").await.unwrap().size, 2);
    assert_eq!(driver.list("a").await.unwrap(), vec!["a/obj".to_owned()]);
    assert_eq!(driver.walk("a").await.unwrap().len(), 1);
}

#[tokio::test]
async fn fs_put_content_leaves_no_temp_files() {
    let (dir, driver) = fresh_fs_driver().await;
    for i in 0..20 {
        driver
            .put_content(&format!("a/b/{i}"), Bytes::from(vec![i as u8; 1000]))
            .await
            .unwrap();
    }
    let names: Vec<String> = std::fs::read_dir(dir.path().join("a/b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 20, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')));
    assert_eq!(driver.list("a/b").await.unwrap().len(), 20);
}

//! The shared driver suite against both drivers, plus filesystem crash-safety checks.

use std::sync::Arc;

use bytes::Bytes;
use ocireg_store::driver::conformance;
use ocireg_store::{Driver, FsDriver, MemoryDriver, StoreError};

#[tokio::test]
async fn memory_driver_passes_suite() {
    conformance::run_all(Arc::new(MemoryDriver::new()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_driver_passes_suite() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FsDriver::open(dir.path()).await.unwrap();
    conformance::run_all(Arc::new(driver)).await.unwrap();
}

#[tokio::test]
async fn fs_leftover_temp_files_are_invisible_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FsDriver::open(dir.path()).await.unwrap();
    driver
        .put_content("repo/obj", Bytes::from_static(b"committed"))
        .await
        .unwrap();
    drop(driver);

    // Simulate writes interrupted by a crash: temp files that never got renamed.
    let tmp = dir.path().join(".tmp");
    std::fs::write(tmp.join("0123456789abcdef"), b"torn write").unwrap();
    std::fs::write(tmp.join("fedcba9876543210"), b"another").unwrap();
    // A hidden file inside a data directory (e.g. from an editor or an older layout).
    std::fs::write(dir.path().join("repo/.partial"), b"junk").unwrap();

    let driver = FsDriver::open(dir.path()).await.unwrap();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp dir not cleaned on open"
    );
    for key in [".tmp/0123456789abcdef", "repo/.partial"] {
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
    assert_eq!(driver.list("repo").await.unwrap(), vec!["repo/obj".to_owned()]);
    let all: Vec<String> = driver
        .walk("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(all, vec!["repo/obj".to_owned()]);
    assert_eq!(
        driver.get_content("repo/obj").await.unwrap().as_ref(),
        b"committed"
    );
}

#[tokio::test]
async fn fs_put_content_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let driver = FsDriver::open(dir.path()).await.unwrap();
    for i in 0..20 {
        driver
            .put_content(&format!("a/b/{i}"), Bytes::from(vec![i as u8; 1000]))
            .await
            .unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    assert_eq!(driver.list("a/b").await.unwrap().len(), 20);
}

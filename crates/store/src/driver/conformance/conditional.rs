//! Conformance checks of conditional writes (`put_if`), alone and racing.

use std::sync::Arc;

use bytes::Bytes;

use super::{fail, pattern, CheckResult};
use crate::driver::Driver;
use crate::error::StoreError;

/// `put_if`: create-if-absent and compare-and-swap succeed only when their condition holds,
/// and a refused write changes nothing.
pub async fn conditional_puts(d: &dyn Driver) -> CheckResult {
    use crate::driver::{Precondition, Version};
    let key = "cond/key";
    let refused =
        |r: Result<Version, StoreError>| matches!(r, Err(StoreError::PreconditionFailed { .. }));
    let v1 = d
        .put_if(key, Bytes::from_static(b"one"), Precondition::Absent)
        .await
        .map_err(fail("create if absent"))?;
    let (got, seen) = d.get_versioned(key).await.map_err(fail("get versioned"))?;
    check!(
        got.as_ref() == b"one" && seen == v1,
        "versioned read after create"
    );
    check!(
        refused(
            d.put_if(key, Bytes::from_static(b"two"), Precondition::Absent)
                .await
        ),
        "create over an existing object must be refused"
    );
    let v2 = d
        .put_if(
            key,
            Bytes::from_static(b"two"),
            Precondition::Matches(v1.clone()),
        )
        .await
        .map_err(fail("compare and swap"))?;
    check!(v2 != v1, "a new content has a new version");
    check!(
        refused(
            d.put_if(key, Bytes::from_static(b"three"), Precondition::Matches(v1))
                .await
        ),
        "a swap against an old version must be refused"
    );
    let (got, seen) = d.get_versioned(key).await.map_err(fail("get versioned"))?;
    check!(
        got.as_ref() == b"two" && seen == v2,
        "refused writes changed nothing"
    );
    check!(
        refused(
            d.put_if(
                "cond/absent",
                Bytes::from_static(b"x"),
                Precondition::Matches(v2)
            )
            .await
        ),
        "a swap on an absent object must be refused"
    );
    check!(
        d.get_versioned("cond/absent")
            .await
            .is_err_and(|e| e.is_not_found()),
        "a refused swap created nothing"
    );
    d.delete("cond").await.map_err(fail("delete"))?;
    Ok(())
}

/// Concurrent compare-and-swaps against one version: exactly one wins.
pub async fn racing_conditional_puts(driver: Arc<dyn Driver>) -> CheckResult {
    use crate::driver::Precondition;
    let key = "race/key";
    let base = driver
        .put_if(key, Bytes::from_static(b"base"), Precondition::Absent)
        .await
        .map_err(fail("create"))?;
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let d = Arc::clone(&driver);
        let condition = Precondition::Matches(base.clone());
        tasks.push(tokio::spawn(async move {
            d.put_if(key, Bytes::from(pattern(1024, i)), condition)
                .await
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.map_err(fail("task"))? {
            Ok(_) => won.push(i),
            Err(StoreError::PreconditionFailed { .. }) => {}
            Err(e) => return Err(format!("racing swap: {e}")),
        }
    }
    check!(
        won.len() == 1,
        "exactly one racing swap must win, {} did",
        won.len()
    );
    let got = driver.get_content(key).await.map_err(fail("get"))?;
    check!(
        won.iter()
            .any(|&i| got.as_ref() == pattern(1024, i as u8).as_slice()),
        "the stored object is the winner's"
    );
    driver.delete("race").await.map_err(fail("delete"))?;
    Ok(())
}

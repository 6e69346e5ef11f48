//! Waiting for something that must happen, with a deadline so that a test fails instead
//! of hanging.

use std::future::Future;
use std::time::Duration;

/// Fails the test if `f` takes longer than `wait`; `what` names it in the failure.
pub async fn within_for<T>(wait: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(wait, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Whether `check` holds within `wait`, polling it every 20 ms.
pub async fn eventually(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_sees_a_condition_that_comes_true() {
        let start = tokio::time::Instant::now();
        let later = start + Duration::from_millis(50);
        assert!(
            eventually(Duration::from_secs(5), || tokio::time::Instant::now()
                >= later)
            .await
        );
        assert!(!eventually(Duration::from_millis(50), || false).await);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out waiting for nothing")]
    async fn within_for_fails_a_wait_that_is_too_long() {
        within_for(
            Duration::from_millis(10),
            "nothing",
            std::future::pending::<()>(),
        )
        .await;
    }
}

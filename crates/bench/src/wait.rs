//! Waiting for a condition with a deadline: the harness never sleeps and hopes.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// Polls `check` every `every` until it yields `Ok(Some(_))`, fails with its error, or fails with
/// [`BenchError::Timeout`] naming `what` after `timeout`.
pub async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = until(
            "three calls",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                let done = calls >= 3;
                async move { Ok(done.then_some(calls)) }
            },
        )
        .await
        .expect("value");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_condition_named() {
        let error = until::<(), _, _>(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || async { Ok(None) },
        )
        .await
        .expect_err("timeout");
        assert!(error.to_string().contains("waiting for never"), "{error}");
    }

    #[tokio::test]
    async fn an_error_ends_the_wait() {
        let error = until::<(), _, _>(
            "failing",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || async { Err(BenchError::unexpected("check", "broken")) },
        )
        .await
        .expect_err("error");
        assert!(error.to_string().contains("broken"));
    }
}

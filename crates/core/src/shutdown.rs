//! The shutdown signal: SIGTERM or Ctrl-C becomes a cancelled token that every loop watches.
//!
//! On cancellation a worker stops consuming, finishes or hands back what it holds, and exits
//! within its grace period. Loops select on [`Shutdown::cancelled`] rather than polling a flag.

use tokio_util::sync::CancellationToken;

/// A cloneable handle on the process's shutdown; cancelling one clone cancels them all.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that is triggered by SIGTERM or SIGINT (Ctrl-C).
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; finishing in-flight work");
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has been requested.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// The underlying token, for APIs that take one.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                tokio::select! {
                    _ = sigterm.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C will stop this process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_share_one_signal() {
        let shutdown = Shutdown::new();
        let watcher = shutdown.clone();
        assert!(!watcher.is_triggered());
        shutdown.trigger();
        watcher.cancelled().await;
        assert!(watcher.is_triggered());
    }
}

//! The shared Redis connection: every command bounded by a timeout, timed, counted, and
//! reflected in `is_ready`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisResult};

use crate::{ClusterError, ClusterMetrics, clock};

/// How long any one Redis command may take before the caller gets `ClusterError::Timeout`.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A `ConnectionManager` (which reconnects by itself after a failure) plus the health
/// bookkeeping that every command goes through.
pub(crate) struct Connection {
    manager: ConnectionManager,
    metrics: ClusterMetrics,
    ready: AtomicBool,
}

impl Connection {
    pub(crate) fn new(manager: ConnectionManager, metrics: ClusterMetrics) -> Self {
        Self {
            manager,
            metrics,
            ready: AtomicBool::new(true),
        }
    }

    pub(crate) fn metrics(&self) -> &ClusterMetrics {
        &self.metrics
    }

    /// Whether the last round trip (on any of this node's connections) succeeded.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Runs `cmd`.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, ClusterError> {
        let mut conn = self.manager.clone();
        self.timed(command, async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs `pipe` (atomic if it was built with `.atomic()`).
    pub(crate) async fn pipe<T: FromRedisValue>(
        &self,
        command: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, ClusterError> {
        let mut conn = self.manager.clone();
        self.timed(command, async move { pipe.query_async(&mut conn).await })
            .await
    }

    /// Runs a Lua script (EVALSHA, loading it first if Redis lost it in a restart).
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        command: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterError> {
        let mut conn = self.manager.clone();
        self.timed(
            command,
            async move { invocation.invoke_async(&mut conn).await },
        )
        .await
    }

    /// Awaits `fut` for at most `COMMAND_TIMEOUT` and records the outcome.
    async fn timed<T>(
        &self,
        command: &'static str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        let started = clock::now();
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(ClusterError::Redis { command, source }),
            Err(_) => Err(ClusterError::Timeout {
                command,
                after: COMMAND_TIMEOUT,
            }),
        };
        self.record(result.as_ref().err(), Some(started.elapsed()));
        result
    }

    /// Books one round trip: `error` if it failed, `elapsed` for the histogram (`None` for
    /// a blocking read, whose time says nothing about Redis). The first success after a
    /// connectivity failure counts as a reconnect.
    pub(crate) fn record(&self, error: Option<&ClusterError>, elapsed: Option<Duration>) {
        match error {
            None => {
                if let Some(elapsed) = elapsed {
                    self.metrics.roundtrip(elapsed.as_secs_f64());
                }
                if !self.ready.swap(true, Ordering::Relaxed) {
                    self.metrics.reconnected();
                    tracing::info!("Redis is reachable again");
                }
            }
            Some(err) => {
                self.metrics.error();
                if err.is_connectivity() && self.ready.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "Redis is unreachable");
                } else {
                    tracing::warn!(error = %err, "Redis command failed");
                }
            }
        }
    }
}

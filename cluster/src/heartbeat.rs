//! The lease: `{prefix}node:{id}` set with `PX lease` and refreshed every `lease / 3`, and
//! presence rebuilt from the local copy whenever Redis may have lost or missed some of it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::backoff::Backoff;
use crate::cluster::Inner;
use crate::presence::{self, BATCH, Purge};
use crate::scripts::HEARTBEAT;
use crate::{ClusterError, clock};

/// Refreshes the lease until aborted; after a failure retries with backoff (never slower
/// than the refresh period), and rebuilds presence when needed.
pub(crate) async fn run(inner: Arc<Inner>) {
    let period = inner.lease / 3;
    let mut backoff = Backoff::default();
    let mut delay = period;
    loop {
        clock::sleep(delay).await;
        delay = match refresh(&inner).await {
            Ok(()) => {
                backoff.reset();
                period
            }
            Err(err) => {
                tracing::warn!(error = %err, "lease refresh failed; retrying");
                backoff.next_delay().min(period)
            }
        };
    }
}

/// One refresh, then a rebuild of presence if it is due.
async fn refresh(inner: &Inner) -> Result<(), ClusterError> {
    beat(inner).await?;
    if inner.dirty.swap(false, Ordering::Relaxed)
        && let Err(err) = rebuild(inner).await
    {
        inner.dirty.store(true, Ordering::Relaxed);
        return Err(err);
    }
    Ok(())
}

/// Sets the lease. If it had expired or Redis lost it (a restart), marks presence for a
/// rebuild; if another process holds it, says so.
pub(crate) async fn beat(inner: &Inner) -> Result<(), ClusterError> {
    let keys = &inner.keys;
    let mut invocation = HEARTBEAT.key(keys.node(&inner.node));
    invocation
        .key(keys.nodes())
        .arg(&inner.token)
        .arg(u64::try_from(inner.lease.as_millis()).unwrap_or(u64::MAX))
        .arg(inner.node.as_str());
    let previous: Option<String> = inner.conn.script("HEARTBEAT", &invocation).await?;
    match previous {
        Some(token) if token == inner.token => {}
        Some(_) => tracing::warn!(node = %inner.node, "another process uses this node id"),
        None => {
            if inner.registrations().len() > 0 {
                tracing::info!(node = %inner.node, "lease was gone (Redis restarted or it expired)");
                inner.dirty.store(true, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Replaces this node's presence in Redis by the local copy, oldest registration first.
async fn rebuild(inner: &Inner) -> Result<(), ClusterError> {
    let _exclusive = inner.rebuild.write().await;
    let registrations = inner.registrations().snapshot();
    presence::purge(&inner.conn, &inner.keys, &inner.node, Purge::Rebuild).await?;
    for batch in registrations.chunks(BATCH) {
        presence::register(&inner.conn, &inner.keys, &inner.node, batch).await?;
    }
    tracing::info!(node = %inner.node, sessions = registrations.len(), "presence rebuilt");
    Ok(())
}

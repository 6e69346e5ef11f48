//! `Cluster`: the handle a signaling node uses to share presence and exchange messages
//! with the other nodes through Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use tokio::sync::{RwLock, broadcast};
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::backoff;
use crate::connection::{COMMAND_TIMEOUT, Connection};
use crate::inbox::{self, Inbox};
use crate::keys::Keys;
use crate::presence::{self, Purge, SessionAddr};
use crate::registrations::Registrations;
use crate::scripts::{SEND, SEND_MANY};
use crate::watcher::{self, ClusterEvent, NodeWatch};
use crate::{ClusterConfig, ClusterError, ClusterMetrics, NodeId, heartbeat};

/// Approximate cap on a node's inbox (`XADD MAXLEN ~`): a node that stops reading cannot
/// make Redis grow without bound.
const INBOX_MAX_LEN: u64 = 100_000;

/// Events buffered per `NodeWatch` before a slow watcher starts missing some.
const EVENTS_CAPACITY: usize = 1024;

/// A cheap, cloneable handle on this node's membership of the cluster. The background
/// tasks (lease refresh, inbox reader, node watcher) run until `leave`, or until the last
/// clone is dropped, which is what a crash looks like to the other nodes.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    tasks: Arc<Tasks>,
}

/// What the handle and its background tasks share.
pub(crate) struct Inner {
    pub(crate) node: NodeId,
    pub(crate) keys: Keys,
    pub(crate) conn: Connection,
    pub(crate) lease: Duration,
    /// This process's value of the lease key, to notice another process using our id.
    pub(crate) token: String,
    registrations: Mutex<Registrations>,
    /// Held for reading by register/unregister, for writing by a rebuild of presence, so
    /// a rebuild never re-adds a session unregistered while it ran.
    pub(crate) rebuild: RwLock<()>,
    /// Redis may disagree with `registrations` (a write failed, or the lease lapsed):
    /// the next successful heartbeat rebuilds presence.
    pub(crate) dirty: AtomicBool,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
}

impl Inner {
    pub(crate) fn registrations(&self) -> MutexGuard<'_, Registrations> {
        self.registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Aborts the background tasks when the last `Cluster` clone goes.
struct Tasks(Vec<AbortHandle>);

impl Tasks {
    fn abort(&self) {
        self.0.iter().for_each(AbortHandle::abort);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Cluster {
    /// Connects (bounded by `connect_timeout`), PINGs, takes over this node id (clearing
    /// what an earlier process with the same id left), takes the lease and starts the
    /// background tasks. Messages sent to this node after this returns reach the `Inbox`.
    ///
    /// Errors name the URL without its password, and the cause.
    pub async fn connect(config: ClusterConfig) -> Result<(Cluster, Inbox), ClusterError> {
        config.validate()?;
        let url = config.redacted_url();
        let client = open_client(&config).map_err(|source| ClusterError::Connect {
            url: url.clone(),
            source,
        })?;
        let (reader, manager) =
            tokio::time::timeout(config.connect_timeout, open(&client, &config))
                .await
                .map_err(|_| ClusterError::ConnectTimeout {
                    url: url.clone(),
                    after: config.connect_timeout,
                })?
                .map_err(|source| connect_error(&url, config.connect_timeout, source))?;
        let inner = Arc::new(Inner {
            keys: Keys::new(&config.key_prefix),
            conn: Connection::new(manager, ClusterMetrics::new(&config.node)),
            lease: config.lease,
            token: NodeId::random().to_string(),
            registrations: Mutex::default(),
            rebuild: RwLock::new(()),
            dirty: AtomicBool::new(false),
            events: broadcast::channel(EVENTS_CAPACITY).0,
            node: config.node,
        });
        // A process that had this id before us is gone; its sessions and inbox with it.
        presence::purge(&inner.conn, &inner.keys, &inner.node, Purge::Leaving).await?;
        heartbeat::beat(&inner).await?;
        let start = inbox::last_id(&inner).await?;
        let (inbox, reader) =
            inbox::start(inner.clone(), client, reader, start, config.connect_timeout);
        let span = |task: &'static str| tracing::info_span!("cluster", node = %inner.node, task);
        let tasks = vec![
            reader,
            tokio::spawn(heartbeat::run(inner.clone()).instrument(span("lease"))).abort_handle(),
            tokio::spawn(watcher::run(inner.clone()).instrument(span("watch"))).abort_handle(),
        ];
        tracing::info!(%url, node = %inner.node, lease = ?inner.lease, "joined the cluster");
        let cluster = Cluster {
            inner,
            tasks: Arc::new(Tasks(tasks)),
        };
        Ok((cluster, inbox))
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.inner.node
    }

    /// Records that `user` has `session` on this node. Kept locally too: if this fails, or
    /// Redis later loses it, presence is rebuilt once Redis answers again.
    pub async fn register(&self, user: &str, session: u64) -> Result<(), ClusterError> {
        let _shared = self.inner.rebuild.read().await;
        self.inner.registrations().insert(user, session);
        let batch = [(user.to_owned(), session)];
        let result =
            presence::register(&self.inner.conn, &self.inner.keys, &self.inner.node, &batch).await;
        self.mark_dirty_on_error(result)
    }

    /// Forgets `user`'s `session` on this node (locally at once, in Redis now or at the
    /// next rebuild).
    pub async fn unregister(&self, user: &str, session: u64) -> Result<(), ClusterError> {
        let _shared = self.inner.rebuild.read().await;
        self.inner.registrations().remove(user, session);
        let result = presence::unregister(
            &self.inner.conn,
            &self.inner.keys,
            &self.inner.node,
            user,
            session,
        )
        .await;
        self.mark_dirty_on_error(result)
    }

    fn mark_dirty_on_error(&self, result: Result<(), ClusterError>) -> Result<(), ClusterError> {
        if result.is_err() {
            self.inner.dirty.store(true, Ordering::Relaxed);
        }
        result
    }

    /// The user's sessions on live nodes only (a node whose lease expired contributes
    /// nothing, and its entries are removed on the way), oldest registration first.
    pub async fn sessions(&self, user: &str) -> Result<Vec<SessionAddr>, ClusterError> {
        presence::sessions(&self.inner.conn, &self.inner.keys, user).await
    }

    /// Appends `payload` to `to`'s inbox. Messages from one sender to one receiver arrive
    /// in order and exactly once while Redis keeps its data. Fails with `NodeNotLive` if
    /// `to` holds no lease (nobody would read it).
    pub async fn send(&self, to: &NodeId, payload: &[u8]) -> Result<(), ClusterError> {
        let keys = &self.inner.keys;
        let mut invocation = SEND.key(keys.node(to));
        invocation
            .key(keys.inbox(to))
            .arg(self.inner.node.as_str())
            .arg(payload)
            .arg(INBOX_MAX_LEN);
        let id: Option<String> = self.inner.conn.script("SEND", &invocation).await?;
        match id {
            Some(id) => {
                self.inner.conn.metrics().sent();
                tracing::debug!(%to, %id, len = payload.len(), "sent");
                Ok(())
            }
            None => Err(ClusterError::NodeNotLive(to.clone())),
        }
    }

    /// Appends `payloads` to `to`'s inbox in order, in one round trip (a script that checks
    /// the lease once). The same guarantees and errors as [`Self::send`]; on an error none
    /// was appended.
    pub async fn send_many(&self, to: &NodeId, payloads: &[Vec<u8>]) -> Result<(), ClusterError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let keys = &self.inner.keys;
        let mut invocation = SEND_MANY.key(keys.node(to));
        invocation
            .key(keys.inbox(to))
            .arg(self.inner.node.as_str())
            .arg(INBOX_MAX_LEN);
        for payload in payloads {
            invocation.arg(payload.as_slice());
        }
        let appended: Option<u64> = self.inner.conn.script("SEND_MANY", &invocation).await?;
        match appended {
            Some(n) => {
                for _ in 0..n {
                    self.inner.conn.metrics().sent();
                }
                tracing::debug!(%to, n, "sent");
                Ok(())
            }
            None => Err(ClusterError::NodeNotLive(to.clone())),
        }
    }

    /// Nodes whose lease is current (this one included), sorted.
    pub async fn live_nodes(&self) -> Result<Vec<NodeId>, ClusterError> {
        let states = watcher::node_states(&self.inner, &[]).await?;
        let mut live: Vec<NodeId> = states
            .into_iter()
            .filter(|s| s.live)
            .map(|s| s.node)
            .collect();
        live.sort();
        Ok(live)
    }

    /// Events about other nodes: `NodeUp` when a lease appears, `NodeDown` when one
    /// expires (reported within `lease * 4 / 3` of the node's death) or the node leaves.
    pub fn watch_nodes(&self) -> NodeWatch {
        NodeWatch::new(self.inner.events.subscribe())
    }

    /// Whether the last Redis round trip succeeded (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.inner.conn.is_ready()
    }

    /// This node's cluster metrics.
    pub fn metrics(&self) -> &ClusterMetrics {
        self.inner.conn.metrics()
    }

    /// Leaves gracefully: stops the background tasks (for every clone of this handle;
    /// the `Inbox` ends), then removes this node's lease, presence and inbox.
    pub async fn leave(self) -> Result<(), ClusterError> {
        self.tasks.abort();
        let inner = &self.inner;
        inner
            .conn
            .query::<()>("DEL", redis::cmd("DEL").arg(inner.keys.node(&inner.node)))
            .await?;
        let removed =
            presence::purge(&inner.conn, &inner.keys, &inner.node, Purge::Leaving).await?;
        tracing::info!(node = %inner.node, sessions = removed.unwrap_or(0), "left the cluster");
        Ok(())
    }
}

/// The client for `config.url`; for `rediss://` with rustls on ring as the process's
/// crypto provider unless one was installed already.
fn open_client(config: &ClusterConfig) -> redis::RedisResult<redis::Client> {
    if config.url.starts_with("rediss://") {
        // An error only says that a provider is installed already, which is what we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    redis::Client::open(config.url.as_str())
}

/// `source` as a connect error; redis-rs's own connect timeout as `ConnectTimeout`.
fn connect_error(url: &str, after: Duration, source: redis::RedisError) -> ClusterError {
    if source.is_timeout() {
        ClusterError::ConnectTimeout {
            url: url.to_owned(),
            after,
        }
    } else {
        ClusterError::Connect {
            url: url.to_owned(),
            source,
        }
    }
}

/// The inbox reader's dedicated connection (one attempt, so a refusal is reported as
/// such), a PING on it, then the shared `ConnectionManager`.
async fn open(
    client: &redis::Client,
    config: &ClusterConfig,
) -> redis::RedisResult<(MultiplexedConnection, ConnectionManager)> {
    let mut reader = client
        .get_multiplexed_async_connection_with_config(&inbox::connection_config(
            config.connect_timeout,
        ))
        .await?;
    redis::cmd("PING")
        .query_async::<String>(&mut reader)
        .await?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_min_delay(backoff::MIN)
        .set_max_delay(backoff::MAX);
    let manager = ConnectionManager::new_with_config(client.clone(), manager_config).await?;
    Ok((reader, manager))
}

//! This node's link to the other nodes of a cluster (`--redis-url`): the tokio side of the
//! switchboard's cluster outputs. The switchboard decides (sans-IO); the tasks here carry
//! out its [`Output::Lookup`], [`Output::Node`], [`Output::Registered`] and
//! [`Output::Unregistered`] through Redis (`signaling_cluster`), in the order it emitted
//! them, and feed back what Redis brings: lookups answered, other nodes' messages, nodes
//! that died. docs/architecture.md, "Several nodes".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use signaling_cluster::{Cluster, ClusterConfig, ClusterError, ClusterEvent, Inbox};
use switchboard::{NodeId, NodeMessage, Output, SessionAddr, SessionId};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::clock;
use crate::config::ClusterSettings;
use crate::server::Shared;

/// Cluster outputs waiting for the outbound task. Past this many (Redis away for long), new
/// ones are dropped and counted, so that memory stays bounded.
const OUTBOUND_CAPACITY: usize = 100_000;

/// How long a message for another node is retried while Redis does not answer, or the node
/// holds no lease (after a Redis restart it takes a third of its lease to take it again);
/// then it is dropped (the parties' calls end when the node is seen gone). At least the
/// lease, so that a node is given up on only once it is reported gone.
const SEND_PATIENCE: Duration = Duration::from_secs(15);

/// Messages waiting for one node past which new ones for it are dropped.
const PER_NODE_CAPACITY: usize = 10_000;

/// The switchboard's side of the link: where the lock-holding dispatch drops cluster
/// outputs without waiting.
pub(crate) struct Outbound {
    tx: mpsc::Sender<Output>,
    pending: Pending,
}

/// Cluster outputs queued and not carried out yet (a node message: not yet sent or given
/// up on): a draining node leaves only once none is left.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn done(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// How many there are.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Outbound {
    /// Queues `out` for the outbound task; never blocks.
    pub fn push(&self, out: Output) {
        self.pending.add(1);
        if let Err(e) = self.tx.try_send(out) {
            self.pending.done(1);
            warn!(error = %e, "cluster outbound queue full: output dropped");
        }
    }

    /// What is still to be carried out.
    pub fn pending(&self) -> Pending {
        self.pending.clone()
    }
}

/// A joined cluster: the handle, and what the tasks need once the server's shared state
/// exists.
pub(crate) struct Link {
    pub cluster: Cluster,
    inbox: Inbox,
    rx: mpsc::Receiver<Output>,
    pending: Pending,
}

/// Connects to Redis as `settings.node`; fails (naming the URL, without its password) if
/// Redis cannot be reached within the connect timeout.
pub(crate) async fn join(settings: &ClusterSettings) -> Result<(Link, Outbound), ClusterError> {
    let mut config = ClusterConfig::new(settings.redis_url.clone(), settings.node.clone());
    config.lease = settings.lease;
    let (cluster, inbox) = Cluster::connect(config).await?;
    info!(node = %settings.node, "joined the cluster");
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let pending = Pending::default();
    let link = Link {
        cluster,
        inbox,
        rx,
        pending: pending.clone(),
    };
    Ok((link, Outbound { tx, pending }))
}

/// The switchboard's name for a cluster node.
fn board_node(node: &signaling_cluster::NodeId) -> NodeId {
    NodeId::new(node.as_str())
}

impl Link {
    /// Starts the tasks: outbound (the switchboard's outputs to Redis, in order), inbound
    /// (other nodes' messages to the switchboard) and the node watcher (dead nodes).
    pub fn start(self, shared: Arc<Shared>) {
        let Link {
            cluster,
            inbox,
            rx,
            pending,
        } = self;
        tokio::spawn(outbound(shared.clone(), cluster.clone(), rx, pending));
        tokio::spawn(inbound(shared.clone(), inbox));
        tokio::spawn(watch(shared, cluster));
    }
}

/// Carries out the switchboard's cluster outputs in order. Messages for other nodes go to
/// one task per node, so that what is sent to a node arrives in the order it was sent, and
/// a node that does not answer holds up only its own messages.
async fn outbound(
    shared: Arc<Shared>,
    cluster: Cluster,
    mut rx: mpsc::Receiver<Output>,
    pending: Pending,
) {
    let mut per_node: HashMap<NodeId, mpsc::Sender<NodeMessage>> = HashMap::new();
    let patience = SEND_PATIENCE.max(cluster_lease(&shared) * 2);
    while let Some(out) = rx.recv().await {
        // A node message is done once its node's task sent it (or gave up); the rest here.
        let node_message = matches!(out, Output::Node { .. });
        match out {
            Output::Lookup { call, user } => {
                let found = match cluster.sessions(user.as_str()).await {
                    Ok(found) => Ok(found
                        .into_iter()
                        .map(|a| SessionAddr {
                            node: board_node(&a.node),
                            session: SessionId(a.session),
                        })
                        .collect()),
                    Err(e) => {
                        warn!(user = %user, error = %e, "callee lookup failed");
                        Err(())
                    }
                };
                shared.with_board(|b| b.lookup_done(call, found, clock::now()));
            }
            Output::Node { to, msg } => {
                let queue = per_node.entry(to.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(PER_NODE_CAPACITY);
                    let (shared, cluster, done) =
                        (shared.clone(), cluster.clone(), pending.clone());
                    tokio::spawn(to_node(shared, cluster, to.clone(), rx, patience, done));
                    tx
                });
                if let Err(e) = queue.try_send(msg) {
                    pending.done(1);
                    warn!(to = %to, error = %e, "messages for a node pile up: dropped");
                }
            }
            Output::Registered { user, session } => {
                // The `welcome` waits for this write, so that whoever has one can be called
                // from every node; while Redis is away it does not wait (the cluster handle
                // keeps the registration and writes it when Redis answers again).
                if cluster.is_ready() {
                    if let Err(e) = cluster.register(user.as_str(), session.0).await {
                        warn!(user = %user, error = %e, "presence not written yet");
                    }
                } else {
                    let cluster = cluster.clone();
                    tokio::spawn(async move {
                        if let Err(e) = cluster.register(user.as_str(), session.0).await {
                            warn!(user = %user, error = %e, "presence not written yet");
                        }
                    });
                }
                shared.with_board(|b| b.registered(session));
            }
            Output::Unregistered { user, session } => {
                if let Err(e) = cluster.unregister(user.as_str(), session.0).await {
                    warn!(user = %user, error = %e, "presence not removed yet");
                }
            }
            Output::Wake(_) | Output::Close { .. } => {}
        }
        if !node_message {
            pending.done(1);
        }
    }
}

/// The lease of this node (the others have the same in a sane deployment).
fn cluster_lease(shared: &Shared) -> Duration {
    shared
        .config
        .cluster
        .as_ref()
        .map_or(Duration::ZERO, |c| c.lease)
}

/// Messages for one node sent in one round trip at most.
const BATCH: usize = 256;

/// Sends what the switchboard has for node `to`, in order: whatever is waiting goes in one
/// round trip (under load, one Redis call carries many messages instead of each waiting for
/// the one before). What cannot be sent within `patience` is reported back as
/// undeliverable.
async fn to_node(
    shared: Arc<Shared>,
    cluster: Cluster,
    to: NodeId,
    mut rx: mpsc::Receiver<NodeMessage>,
    patience: Duration,
    pending: Pending,
) {
    // After a batch was given up on, the next are tried once each until one goes through:
    // a dead node must not hold each of them for the whole patience.
    let mut unreachable = false;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let n = rx.recv_many(&mut batch, BATCH).await;
        if n == 0 {
            break;
        }
        let wait = if unreachable {
            Duration::ZERO
        } else {
            patience
        };
        let sent = send(&cluster, &to, &batch, wait).await;
        unreachable = !sent;
        if !sent {
            let to = to.clone();
            let now = clock::now();
            shared.with_board(|b| {
                for msg in batch.drain(..) {
                    b.undeliverable(to.clone(), msg, now);
                }
            });
        }
        pending.done(n);
        batch.clear();
    }
}

/// Sends `msgs` to node `to` in one round trip, retrying while Redis does not answer or the
/// node holds no lease, for at most `patience`. Returns whether they were sent.
async fn send(cluster: &Cluster, to: &NodeId, msgs: &[NodeMessage], patience: Duration) -> bool {
    let Ok(node) = signaling_cluster::NodeId::new(to.as_str()) else {
        return false;
    };
    let mut payloads = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match serde_json::to_vec(msg) {
            Ok(p) => payloads.push(p),
            Err(e) => warn!(error = %e, kind = msg.kind(), "node message not serializable"),
        }
    }
    let give_up = clock::now() + patience;
    let mut pause = Duration::from_millis(100);
    loop {
        match cluster.send_many(&node, &payloads).await {
            Ok(()) => {
                debug!(to = %to, n = msgs.len(), "sent to node");
                return true;
            }
            Err(e) if clock::now() + pause < give_up => {
                debug!(to = %to, error = %e, "send failed; retrying");
                tokio::time::sleep_until((clock::now() + pause).into()).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                warn!(to = %to, n = msgs.len(), error = %e, "messages to node dropped");
                return false;
            }
        }
    }
}

/// Hands what other nodes sent to the switchboard.
async fn inbound(shared: Arc<Shared>, mut inbox: Inbox) {
    while let Some(envelope) = inbox.recv().await {
        match serde_json::from_slice::<NodeMessage>(&envelope.payload) {
            Ok(msg) => {
                let from = board_node(&envelope.from);
                shared.with_board(|b| b.from_node(from, msg, clock::now()));
            }
            Err(e) => warn!(from = %envelope.from, error = %e, "unreadable node message"),
        }
    }
}

/// Tells the switchboard about nodes whose lease expired.
async fn watch(shared: Arc<Shared>, cluster: Cluster) {
    let mut nodes = cluster.watch_nodes();
    while let Some(event) = nodes.recv().await {
        if let ClusterEvent::NodeDown(node) = event {
            warn!(node = %node, "node gone: its parties leave their calls");
            let node = board_node(&node);
            shared.with_board(|b| b.node_down(&node, clock::now()));
        }
    }
}

//! This node's link to the other nodes of a cluster (`--redis-url`): the tokio side of the
//! switchboard's cluster outputs. The switchboard decides (sans-IO); the tasks here carry
//! out its [`Output::Lookup`], [`Output::Node`], [`Output::Registered`] and
//! [`Output::Unregistered`] through Redis (`signaling_cluster`), in the order it emitted
//! them, and feed back what Redis brings: lookups answered, other nodes' messages, nodes
//! that died. docs/architecture.md, "Several nodes".

use std::sync::Arc;
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

/// How long a message for another node is retried while Redis does not answer; then it is
/// dropped (the parties' calls end when their node is seen gone, or go on without it).
const SEND_PATIENCE: Duration = Duration::from_secs(15);

/// The switchboard's side of the link: where the lock-holding dispatch drops cluster
/// outputs without waiting.
pub(crate) struct Outbound {
    tx: mpsc::Sender<Output>,
}

impl Outbound {
    /// Queues `out` for the outbound task; never blocks.
    pub fn push(&self, out: Output) {
        if let Err(e) = self.tx.try_send(out) {
            warn!(error = %e, "cluster outbound queue full: output dropped");
        }
    }
}

/// A joined cluster: the handle, and what the tasks need once the server's shared state
/// exists.
pub(crate) struct Link {
    pub cluster: Cluster,
    inbox: Inbox,
    rx: mpsc::Receiver<Output>,
}

/// Connects to Redis as `settings.node`; fails (naming the URL, without its password) if
/// Redis cannot be reached within the connect timeout.
pub(crate) async fn join(settings: &ClusterSettings) -> Result<(Link, Outbound), ClusterError> {
    let mut config = ClusterConfig::new(settings.redis_url.clone(), settings.node.clone());
    config.lease = settings.lease;
    let (cluster, inbox) = Cluster::connect(config).await?;
    info!(node = %settings.node, "joined the cluster");
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    Ok((Link { cluster, inbox, rx }, Outbound { tx }))
}

/// The switchboard's name for a cluster node.
fn board_node(node: &signaling_cluster::NodeId) -> NodeId {
    NodeId::new(node.as_str())
}

impl Link {
    /// Starts the tasks: outbound (the switchboard's outputs to Redis, in order), inbound
    /// (other nodes' messages to the switchboard) and the node watcher (dead nodes).
    pub fn start(self, shared: Arc<Shared>) {
        let Link { cluster, inbox, rx } = self;
        tokio::spawn(outbound(shared.clone(), cluster.clone(), rx));
        tokio::spawn(inbound(shared.clone(), inbox));
        tokio::spawn(watch(shared, cluster));
    }
}

/// Carries out the switchboard's cluster outputs one after the other, so that what it sent
/// to a node arrives in the order it was sent.
async fn outbound(shared: Arc<Shared>, cluster: Cluster, mut rx: mpsc::Receiver<Output>) {
    while let Some(out) = rx.recv().await {
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
            Output::Node { to, msg } => send(&cluster, &to, &msg).await,
            Output::Registered { user, session } => {
                if let Err(e) = cluster.register(user.as_str(), session.0).await {
                    // Kept locally by the cluster handle and written again when Redis answers.
                    warn!(user = %user, error = %e, "presence not written yet");
                }
            }
            Output::Unregistered { user, session } => {
                if let Err(e) = cluster.unregister(user.as_str(), session.0).await {
                    warn!(user = %user, error = %e, "presence not removed yet");
                }
            }
            Output::Wake(_) | Output::Close { .. } => {}
        }
    }
}

/// Sends `msg` to node `to`, retrying while Redis does not answer (at most
/// [`SEND_PATIENCE`]); a node that is not live gets nothing.
async fn send(cluster: &Cluster, to: &NodeId, msg: &NodeMessage) {
    let Ok(node) = signaling_cluster::NodeId::new(to.as_str()) else {
        return;
    };
    let payload = match serde_json::to_vec(msg) {
        Ok(p) => p,
        Err(e) => return warn!(error = %e, "node message not serializable"),
    };
    let give_up = clock::now() + SEND_PATIENCE;
    let mut pause = Duration::from_millis(100);
    loop {
        match cluster.send(&node, &payload).await {
            Ok(()) => return debug!(to = %to, kind = msg.kind(), "sent to node"),
            Err(ClusterError::NodeNotLive(_)) => {
                return debug!(to = %to, kind = msg.kind(), "node not live: dropped");
            }
            Err(e) if clock::now() + pause < give_up => {
                debug!(to = %to, error = %e, "send failed; retrying");
                tokio::time::sleep_until((clock::now() + pause).into()).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return warn!(to = %to, kind = msg.kind(), error = %e, "message to node dropped");
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

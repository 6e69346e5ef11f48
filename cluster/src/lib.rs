//! The Redis-facing I/O layer that lets several signaling nodes act as one: which sessions
//! each user has on which node (presence), and messages from one node to another (a
//! per-node inbox). The sans-IO switchboard decides what to send; this crate only moves it.
//!
//! # Design
//!
//! All keys start with `ClusterConfig::key_prefix` (`sb:` by default).
//!
//! - **Liveness.** Each node holds a lease: `{prefix}node:{id}`, set with `PX lease` at
//!   connect and refreshed every `lease / 3` by a background task, and listed in the set
//!   `{prefix}nodes`. A killed node's lease expires within `lease` (10 s by default) of its
//!   last refresh, so within `lease` of its death.
//! - **Presence.** Per user a sorted set `{prefix}user:{name}` of `"{node}/{session}"`,
//!   scored by a counter (`{prefix}seq`) so that lookups return the oldest registration
//!   first; per node a set `{prefix}sessions:{node}` of `"{user}\n{session}"` so that a
//!   node's entries can be found and removed. Both are written by one Lua script.
//!   [`Cluster::sessions`] returns only members whose node holds a lease (one script, one
//!   round trip) and removes the others on the way, so a dead node drops out of lookups
//!   within `lease`.
//! - **Dead nodes.** Every node looks at the listed nodes every `lease / 3`. A node whose
//!   lease has been missing for a whole `lease` is reported as [`ClusterEvent::NodeDown`]
//!   (so within about `2 × lease + lease / 3` of its last refresh) and its presence,
//!   listing and inbox are deleted by a script that first checks, atomically, that the
//!   lease is still absent. The wait of a whole lease is what tells a dead node from a
//!   Redis that restarted empty: then every lease is gone at once, and the live nodes take
//!   theirs again within `lease / 3`.
//! - **Inbox.** A stream `{prefix}inbox:{node}`. [`Cluster::send`] is `XADD MAXLEN ~ 100000`
//!   with fields `from` and `d`, in a script that refuses ([`ClusterError::NodeNotLive`])
//!   when the receiver holds no lease, so no stream grows that nobody reads. A background
//!   task on a dedicated connection `XREAD`s `BLOCK 1000 COUNT 512` after the last id it
//!   read (at connect: the stream's newest id, so nothing older is replayed and nothing
//!   sent after `connect` returns is missed) and hands [`Envelope`]s to the [`Inbox`]
//!   through a bounded channel, so a slow consumer leaves the backlog in Redis, not in
//!   memory. What was read is trimmed from the stream (`XTRIM MINID`, every 1,024 entries
//!   and whenever a read finds nothing new), so an inbox holds only what is unread. Per
//!   sender and receiver, messages arrive in order and exactly once while
//!   Redis keeps its data.
//! - **Redis goes away.** Every command is bounded by a 2 s timeout; [`Cluster::is_ready`]
//!   says whether the last round trip succeeded. The shared `ConnectionManager` reconnects
//!   by itself; the lease task and the inbox reader retry with backoff (100 ms doubling to
//!   2 s, never slower than `lease / 3` for the lease). When Redis answers again and the
//!   lease was gone (Redis restarted empty, or the lease lapsed and a survivor cleaned up)
//!   or a presence write had failed meanwhile, the node rebuilds its presence from the
//!   local copy of its registrations kept in the handle. If the inbox stream's newest id
//!   is older than the last one read (the stream was lost), the reader starts the new
//!   stream from `0`.
//! - **Node ids are unique.** `connect` clears what an earlier process with the same id
//!   left (its presence and inbox).
//!
//! Targets a standalone Redis (or one primary): some scripts derive keys from the prefix,
//! which Redis Cluster would refuse.
//!
//! # Why `redis` (redis-rs) and not `fred`
//!
//! Both are maintained async clients. `redis` is the older, more widely used one and gives
//! exactly the pieces used here with little surface: `aio::ConnectionManager` (a
//! multiplexed connection that reconnects itself after a failure), a typed streams API
//! (`XREAD` replies), `Script` (EVALSHA that reloads itself after a Redis restart), and
//! rustls for `rediss://`. `fred`'s extras (its own pools, reconnect policies, client-side
//! routing) would duplicate the reconnect and backoff logic this crate must own anyway to
//! rebuild presence.
//!
//! # Example
//!
//! ```no_run
//! use signaling_cluster::{Cluster, ClusterConfig, NodeId};
//!
//! # async fn run() -> Result<(), signaling_cluster::ClusterError> {
//! let config = ClusterConfig::new("redis://127.0.0.1:6379", NodeId::random());
//! let (cluster, mut inbox) = Cluster::connect(config).await?;
//! cluster.register("alice", 1).await?;
//! for addr in cluster.sessions("alice").await? {
//!     cluster.send(&addr.node, b"ring").await?;
//! }
//! while let Some(envelope) = inbox.recv().await {
//!     println!("{} sent {} bytes", envelope.from, envelope.payload.len());
//! }
//! cluster.leave().await
//! # }
//! ```

mod backoff;
mod clock;
mod cluster;
mod config;
mod connection;
mod error;
mod heartbeat;
mod inbox;
mod keys;
mod metrics;
mod node_id;
mod presence;
mod registrations;
mod scripts;
mod watcher;

pub use cluster::Cluster;
pub use config::ClusterConfig;
pub use error::ClusterError;
pub use inbox::{Envelope, Inbox};
pub use metrics::ClusterMetrics;
pub use node_id::NodeId;
pub use presence::SessionAddr;
pub use watcher::{ClusterEvent, NodeWatch};

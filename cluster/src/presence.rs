//! Presence in Redis: which sessions each user has, on which node.

use crate::keys::{Keys, node_member, user_member};
use crate::scripts::{PURGE, REGISTER, SESSIONS};
use crate::{ClusterError, NodeId, connection::Connection};

/// A session anywhere in the cluster: the node it is connected to and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionAddr {
    pub node: NodeId,
    pub session: u64,
}

/// Sessions per `REGISTER` call when re-registering many, so that one script does not
/// hold Redis for long.
pub(crate) const BATCH: usize = 256;

/// Registers `batch` (user, session) of `node` in one atomic script.
pub(crate) async fn register(
    conn: &Connection,
    keys: &Keys,
    node: &NodeId,
    batch: &[(String, u64)],
) -> Result<(), ClusterError> {
    let mut invocation = REGISTER.key(keys.seq());
    invocation.key(keys.sessions(node)).arg(node.as_str());
    for (user, session) in batch {
        invocation.key(keys.user(user)).arg(user).arg(*session);
    }
    conn.script::<i64>("REGISTER", &invocation).await.map(drop)
}

/// Removes one session of `node` (atomically from both sets).
pub(crate) async fn unregister(
    conn: &Connection,
    keys: &Keys,
    node: &NodeId,
    user: &str,
    session: u64,
) -> Result<(), ClusterError> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .zrem(keys.user(user), user_member(node, session))
        .ignore()
        .srem(keys.sessions(node), node_member(user, session))
        .ignore();
    conn.pipe::<()>("UNREGISTER", &pipe).await
}

/// The user's sessions on nodes with a lease, oldest registration first.
pub(crate) async fn sessions(
    conn: &Connection,
    keys: &Keys,
    user: &str,
) -> Result<Vec<SessionAddr>, ClusterError> {
    let mut invocation = SESSIONS.key(keys.user(user));
    invocation.arg(keys.prefix());
    let members: Vec<String> = conn.script("SESSIONS", &invocation).await?;
    Ok(members.iter().filter_map(|m| parse_member(m)).collect())
}

/// `"{node}/{session}"` back into a `SessionAddr`; `None` (and a warning) for anything else.
fn parse_member(member: &str) -> Option<SessionAddr> {
    let parsed = member.rsplit_once('/').and_then(|(node, session)| {
        Some(SessionAddr {
            node: NodeId::new(node).ok()?,
            session: session.parse().ok()?,
        })
    });
    if parsed.is_none() {
        tracing::warn!(member, "ignoring a malformed presence entry");
    }
    parsed
}

/// What `purge` removes besides a node's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purge {
    /// A node found without a lease: only if it still has none; also forget the node and
    /// delete its inbox.
    Dead,
    /// This node leaving: unconditionally, node and inbox too.
    Leaving,
    /// This node rebuilding its presence: its registrations only.
    Rebuild,
}

/// Removes `node`'s registrations from Redis (see `Purge`). Returns how many were removed,
/// `None` if the node turned out to hold a lease.
pub(crate) async fn purge(
    conn: &Connection,
    keys: &Keys,
    node: &NodeId,
    how: Purge,
) -> Result<Option<u64>, ClusterError> {
    let mut invocation = PURGE.key(keys.node(node));
    invocation.key(keys.sessions(node));
    if how != Purge::Rebuild {
        invocation.key(keys.nodes()).key(keys.inbox(node));
    }
    let only_if_dead = if how == Purge::Dead { "1" } else { "0" };
    invocation
        .arg(keys.prefix())
        .arg(node.as_str())
        .arg(only_if_dead);
    let removed: i64 = conn.script("PURGE", &invocation).await?;
    Ok(u64::try_from(removed).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_back() {
        let addr = parse_member("node-1/42").unwrap();
        assert_eq!((addr.node.as_str(), addr.session), ("node-1", 42));
        assert!(parse_member("node-1").is_none());
        assert!(parse_member("bad node/1").is_none());
        assert!(parse_member("n/x").is_none());
    }
}

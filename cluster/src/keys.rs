//! The Redis keys, all under the configured prefix (`sb:` by default).

use crate::NodeId;

/// Builds every key this crate touches, so that the layout is written down once.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself (the Lua scripts derive per-user and per-node keys from it).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}node:{id}`: a node's lease, a string with a TTL.
    pub(crate) fn node(&self, node: &NodeId) -> String {
        format!("{}node:{node}", self.prefix)
    }

    /// `{prefix}nodes`: a set of every node id that has held a lease and was not yet
    /// cleaned up, so that survivors can find the dead ones.
    pub(crate) fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// `{prefix}user:{name}`: a sorted set of `"{node}/{session}"`, scored by registration
    /// order (`{prefix}seq`).
    pub(crate) fn user(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// `{prefix}sessions:{node}`: a set of `"{user}\n{session}"`, a node's registrations.
    pub(crate) fn sessions(&self, node: &NodeId) -> String {
        format!("{}sessions:{node}", self.prefix)
    }

    /// `{prefix}seq`: a counter that orders registrations.
    pub(crate) fn seq(&self) -> String {
        format!("{}seq", self.prefix)
    }

    /// `{prefix}inbox:{node}`: a stream of messages for a node.
    pub(crate) fn inbox(&self, node: &NodeId) -> String {
        format!("{}inbox:{node}", self.prefix)
    }
}

/// `"{node}/{session}"`, a member of a user's set.
pub(crate) fn user_member(node: &NodeId, session: u64) -> String {
    format!("{node}/{session}")
}

/// `"{user}\n{session}"`, a member of a node's set.
pub(crate) fn node_member(user: &str, session: u64) -> String {
    format!("{user}\n{session}")
}

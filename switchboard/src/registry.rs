//! Where a user's sessions are on this node: the index the switchboard looks up to ring
//! every session of an invite's callee.
//!
//! [`Registry`] is a seam inside one process, not the point where several nodes could
//! share state: its methods are synchronous and cannot fail, and a [`SessionId`] means
//! something only to the switchboard that handed it out. A Redis-backed registry cannot
//! implement it as it stands. Several nodes behind a load balancer would need:
//! - addresses valid on every node (a node id with the session id), and a way to deliver a
//!   message to a session on another node (node-to-node links or a channel per node), since
//!   knowing where the callee is does not reach it;
//! - lookups as inputs and outputs of the sans-IO core (the switchboard asks where a user's
//!   sessions are; the shell answers later, with the sessions or an error), since a shared
//!   store is remote, slow and can fail;
//! - entries that die with the node that wrote them (leases with a ttl), so that a crashed
//!   node's sessions do not go on ringing.

use std::collections::HashMap;

use signaling_protocol::UserName;

use crate::session::SessionId;

/// The user → sessions index of one switchboard.
pub trait Registry: Send {
    /// `user` has a new session.
    fn insert(&mut self, user: &UserName, session: SessionId);
    /// `user`'s `session` ended.
    fn remove(&mut self, user: &UserName, session: SessionId);
    /// The user's sessions, oldest first.
    fn sessions(&self, user: &UserName) -> Vec<SessionId>;
}

/// The registry in a `HashMap`.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    users: HashMap<UserName, Vec<SessionId>>,
}

impl Registry for MemoryRegistry {
    fn insert(&mut self, user: &UserName, session: SessionId) {
        self.users.entry(user.clone()).or_default().push(session);
    }

    fn remove(&mut self, user: &UserName, session: SessionId) {
        if let Some(list) = self.users.get_mut(user) {
            list.retain(|s| *s != session);
            if list.is_empty() {
                self.users.remove(user);
            }
        }
    }

    fn sessions(&self, user: &UserName) -> Vec<SessionId> {
        self.users.get(user).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove() {
        let mut r = MemoryRegistry::default();
        let alice = UserName::new("alice").unwrap();
        r.insert(&alice, SessionId(1));
        r.insert(&alice, SessionId(2));
        assert_eq!(r.sessions(&alice), vec![SessionId(1), SessionId(2)]);
        r.remove(&alice, SessionId(1));
        assert_eq!(r.sessions(&alice), vec![SessionId(2)]);
        r.remove(&alice, SessionId(2));
        assert!(r.sessions(&alice).is_empty());
        assert!(r.users.is_empty(), "no empty entries are kept");
    }
}

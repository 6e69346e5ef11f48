//! Where a user's sessions are: the one piece of state a multi-node deployment shares.
//!
//! The in-memory registry serves a single node; a Redis-backed one can implement the
//! same trait for several nodes behind a load balancer.

use std::collections::HashMap;

use signaling_protocol::UserName;

use crate::session::SessionId;

/// The user → sessions index.
pub trait Registry: Send {
    fn insert(&mut self, user: &UserName, session: SessionId);
    fn remove(&mut self, user: &UserName, session: SessionId);
    /// The user's sessions, oldest first.
    fn sessions(&self, user: &UserName) -> Vec<SessionId>;
}

/// A registry for one node.
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

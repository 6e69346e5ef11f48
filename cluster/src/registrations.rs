//! This node's own registrations, kept locally so that presence can be rebuilt after Redis
//! lost it (a restart without persistence, or a lease that lapsed).

use std::collections::{BTreeMap, HashMap};

/// The sessions this node has registered, in registration order.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    order: BTreeMap<u64, (String, u64)>,
    index: HashMap<(String, u64), u64>,
    next: u64,
}

impl Registrations {
    /// Adds `(user, session)`; false if it was there already (it keeps its place).
    pub(crate) fn insert(&mut self, user: &str, session: u64) -> bool {
        let key = (user.to_owned(), session);
        if self.index.contains_key(&key) {
            return false;
        }
        self.next += 1;
        self.order.insert(self.next, key.clone());
        self.index.insert(key, self.next);
        true
    }

    /// Removes `(user, session)`; false if it was not there.
    pub(crate) fn remove(&mut self, user: &str, session: u64) -> bool {
        match self.index.remove(&(user.to_owned(), session)) {
            Some(n) => self.order.remove(&n).is_some(),
            None => false,
        }
    }

    /// Every registration, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        self.order.values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_registration_order_and_ignores_repeats() {
        let mut r = Registrations::default();
        assert!(r.insert("bob", 2));
        assert!(r.insert("alice", 1));
        assert!(!r.insert("bob", 2));
        assert!(r.insert("bob", 3));
        assert!(r.remove("alice", 1));
        assert!(!r.remove("alice", 1));
        assert_eq!(r.snapshot(), [("bob".to_owned(), 2), ("bob".to_owned(), 3)]);
        assert_eq!(r.len(), 2);
    }
}

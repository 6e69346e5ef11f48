//! `NodeId`: the name a signaling node goes by in Redis keys and messages.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ClusterError;

/// The longest node id, in bytes.
const MAX_LEN: usize = 64;

/// A node's id: 1 to 64 characters of `[A-Za-z0-9_-]`, so that it can sit in a Redis key
/// and in a presence member (`"{node}/{session}"`) without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// `s` if it is a valid node id.
    pub fn new(s: &str) -> Result<Self, ClusterError> {
        let reason = if s.is_empty() {
            Some("empty")
        } else if s.len() > MAX_LEN {
            Some("longer than 64 characters")
        } else if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Some("only A-Z, a-z, 0-9, '_' and '-' are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ClusterError::BadNodeId {
                id: s.to_owned(),
                reason,
            }),
            None => Ok(Self(s.to_owned())),
        }
    }

    /// A fresh id: 12 lowercase hex characters (48 bits) from the operating system's
    /// randomness, for a node that has no configured name.
    pub fn random() -> Self {
        let mut bytes = [0u8; 6];
        // The OS generator does not fail on the platforms we run on; if it ever did, a
        // clock-derived id is still unique enough to tell two processes apart.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = crate::clock::wall_clock_nanos().to_le_bytes();
            bytes.copy_from_slice(&nanos[..6]);
        }
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for NodeId {
    type Err = ClusterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_accepted() {
        for id in ["a", "node-1", "EU_west_2", &"x".repeat(64)] {
            assert_eq!(NodeId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn invalid_ids_are_refused_with_a_reason() {
        for id in ["", "a/b", "a b", "ü", "a:b", "a\nb", &"x".repeat(65)] {
            let err = NodeId::new(id).unwrap_err();
            assert!(
                matches!(err, ClusterError::BadNodeId { .. }),
                "{id:?}: {err}"
            );
        }
    }

    #[test]
    fn random_ids_are_12_hex_chars_and_differ() {
        let (a, b) = (NodeId::random(), NodeId::random());
        assert_eq!(a.as_str().len(), 12);
        assert!(
            a.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn serde_is_a_validated_string() {
        let id = NodeId::new("n1").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"n1\"");
        assert_eq!(serde_json::from_str::<NodeId>("\"n1\"").unwrap(), id);
        assert!(serde_json::from_str::<NodeId>("\"a/b\"").is_err());
    }
}

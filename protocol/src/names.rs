//! Validated identifiers: user names and call ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a user name or call id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than 64 bytes.
    #[error("must be 1 to 64 characters long")]
    Length,
    /// The first character outside the allowed alphabet.
    #[error("character {0:?} is not allowed")]
    Character(char),
}

fn check(s: &str, allowed: impl Fn(char) -> bool) -> Result<(), NameError> {
    if s.is_empty() || s.len() > 64 {
        return Err(NameError::Length);
    }
    match s.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(NameError::Character(c)),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `s` against the contract's alphabet and length.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check(&s, $allowed)?;
                Ok(Self(s))
            }

            /// The name as it is spelled on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

name_type!(
    /// A user name: 1 to 64 chars of `A-Z a-z 0-9 . _ @ -`.
    UserName,
    |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')
);

name_type!(
    /// A call id chosen by the caller: 1 to 64 chars of `A-Z a-z 0-9 _ -`.
    CallId,
    |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(UserName::new("alice@example.com").is_ok());
        assert!(UserName::new("a.b_c-d").is_ok());
        assert_eq!(UserName::new(""), Err(NameError::Length));
        assert_eq!(UserName::new("x".repeat(65)), Err(NameError::Length));
        assert!(UserName::new("x".repeat(64)).is_ok());
        assert_eq!(UserName::new("al ice"), Err(NameError::Character(' ')));
        assert_eq!(UserName::new("alïce"), Err(NameError::Character('ï')));
    }

    #[test]
    fn call_ids() {
        assert!(CallId::new("c-1_A").is_ok());
        assert_eq!(CallId::new("c.1"), Err(NameError::Character('.')));
        assert_eq!(CallId::new("c@1"), Err(NameError::Character('@')));
    }
}

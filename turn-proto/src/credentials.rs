//! TURN REST API credentials, the short-lived scheme coturn also implements.
//!
//! `username = "<unix expiry>:<user>"`, `password = base64(HMAC-SHA1(secret, username))`.
//! The signaling server mints them for `welcome.ice_servers`; the relay checks them.
//! Wall-clock time is always passed in, never read here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A username/password pair for a TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCredential {
    /// `<unix expiry>:<user>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
}

/// Why a REST username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not `<unix expiry>:<user>`.
    #[error("username is not of the form <unix expiry>:<user>")]
    Malformed,
    /// The expiry has passed.
    #[error("credential expired at {expiry} (now {now})")]
    Expired {
        /// The expiry the username carries, Unix seconds.
        expiry: u64,
        /// The time it was checked at, Unix seconds.
        now: u64,
    },
}

/// Mints a credential for `user` valid until `now_unix + ttl_s`.
pub fn mint(secret: &[u8], user: &str, now_unix: u64, ttl_s: u64) -> RestCredential {
    let username = format!("{}:{user}", now_unix.saturating_add(ttl_s));
    let password = password_for(secret, &username);
    RestCredential { username, password }
}

/// The password the REST scheme assigns to `username`.
pub fn password_for(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks that `username` has not expired at `now_unix`; returns the user part.
pub fn check_expiry(username: &str, now_unix: u64) -> Result<&str, CredentialError> {
    let (expiry, user) = username.split_once(':').ok_or(CredentialError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
    if expiry <= now_unix {
        return Err(CredentialError::Expired {
            expiry,
            now: now_unix,
        });
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // Computed independently: printf '1764000000:alice' | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(
            password_for(b"secret", "1764000000:alice"),
            "HhGs1aY+LLJNft8nN2Jo4/604L0="
        );
    }

    #[test]
    fn mint_and_check() {
        let c = mint(b"s3cret", "bob", 1_000, 600);
        assert_eq!(c.username, "1600:bob");
        assert_eq!(c.password, password_for(b"s3cret", "1600:bob"));
        assert_eq!(check_expiry(&c.username, 1_599), Ok("bob"));
        assert_eq!(
            check_expiry(&c.username, 1_600),
            Err(CredentialError::Expired {
                expiry: 1600,
                now: 1600
            })
        );
        assert_eq!(check_expiry("bob", 0), Err(CredentialError::Malformed));
        assert_eq!(check_expiry("x:bob", 0), Err(CredentialError::Malformed));
    }
}

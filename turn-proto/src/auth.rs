//! Long-term credentials (RFC 8489 §9.2): who may allocate, and stateless nonces.
//!
//! Users come from the configuration and from the TURN REST scheme
//! ([`crate::credentials`]). Nonces carry their own expiry and an HMAC over it and the
//! client's IP, so an unauthenticated request creates no state on the relay (pion #361,
//! coturn's per-source nonce state).

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::credentials;

/// Why a request's credentials were refused; also the label of the auth-failure metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// No MESSAGE-INTEGRITY (or USERNAME/REALM/NONCE missing): the first leg of every
    /// authenticated exchange, answered with 401 and a nonce.
    Missing,
    /// The nonce is not one this relay minted.
    BadNonce,
    /// The nonce expired: 438.
    StaleNonce,
    /// Unknown user, or a REST username with a bad form.
    UnknownUser,
    /// A REST username whose expiry has passed.
    Expired,
    /// The HMAC does not match.
    BadIntegrity,
    /// The REALM is not ours.
    WrongRealm,
}

impl AuthFailure {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::BadNonce => "bad_nonce",
            AuthFailure::StaleNonce => "stale_nonce",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Expired => "expired",
            AuthFailure::BadIntegrity => "bad_integrity",
            AuthFailure::WrongRealm => "wrong_realm",
        }
    }
}

/// Whose quota an allocation counts against: a fixed user by name, a TURN REST credential
/// by the user part of `<expiry>:<user>`. Every `welcome` of the signaling server mints a
/// new expiry, so keyed on the whole username one user held as many allocations as
/// credentials it asked for (issue 16, item 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Quota {
    /// A user of `Users::fixed`.
    Fixed(String),
    /// The user part of a TURN REST username.
    Rest(String),
}

/// Who may use the relay: fixed users, TURN REST usernames, or both.
#[derive(Clone, Default)]
pub struct Users {
    /// Fixed `user → password` pairs from the configuration.
    pub fixed: HashMap<String, String>,
    /// The TURN REST shared secret, if that scheme is on.
    pub rest_secret: Option<String>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords or the secret.
        f.debug_struct("Users")
            .field("fixed", &self.fixed.keys().collect::<Vec<_>>())
            .field("rest_secret", &self.rest_secret.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Users {
    /// Whose quota `username` (already authenticated) counts against.
    pub(crate) fn quota(&self, username: &str) -> Quota {
        if self.fixed.contains_key(username) {
            return Quota::Fixed(username.to_owned());
        }
        match username.split_once(':') {
            Some((_, user)) => Quota::Rest(user.to_owned()),
            None => Quota::Rest(username.to_owned()),
        }
    }

    /// The password of `username` at wall-clock time `now_unix`.
    pub(crate) fn password(&self, username: &str, now_unix: u64) -> Result<String, AuthFailure> {
        if let Some(password) = self.fixed.get(username) {
            return Ok(password.clone());
        }
        let secret = self.rest_secret.as_ref().ok_or(AuthFailure::UnknownUser)?;
        match credentials::check_expiry(username, now_unix) {
            Ok(_) => Ok(credentials::password_for(secret.as_bytes(), username)),
            Err(credentials::CredentialError::Expired { .. }) => Err(AuthFailure::Expired),
            Err(credentials::CredentialError::Malformed) => Err(AuthFailure::UnknownUser),
        }
    }
}

/// Bytes of the HMAC a nonce carries.
const TAG_BYTES: usize = 10;
/// Bytes a nonce encodes: the expiry (4) and the tag.
const NONCE_BYTES: usize = 4 + TAG_BYTES;

/// Mints and checks nonces: base64url (no padding) of `<expiry, 4 bytes><first 10 bytes of
/// HMAC-SHA256(secret, expiry ‖ client ip)>`, 19 characters, so that a challenge stays
/// small (it answers a request an attacker may send with a spoofed source: every byte of
/// it is amplification). Expiry counts seconds on the relay's own clock.
pub struct Nonces {
    secret: [u8; 32],
    lifetime_s: u64,
}

impl Nonces {
    /// Nonces keyed with `secret` that live `lifetime_s` seconds.
    pub fn new(secret: [u8; 32], lifetime_s: u64) -> Self {
        Self { secret, lifetime_s }
    }

    /// A nonce for `ip`, valid from `now_s` (seconds on the relay's monotonic clock).
    pub fn mint(&self, ip: IpAddr, now_s: u64) -> String {
        let expiry = (now_s + self.lifetime_s).min(u64::from(u32::MAX));
        let tag = self.tag(expiry, ip);
        let mut raw = [0u8; NONCE_BYTES];
        raw[..4].copy_from_slice(&(expiry as u32).to_be_bytes());
        raw[4..].copy_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` was minted for `ip` and has not expired at `now_s`.
    pub fn check(&self, nonce: &str, ip: IpAddr, now_s: u64) -> Result<(), AuthFailure> {
        let mut raw = [0u8; NONCE_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(nonce.as_bytes(), &mut raw) {
            Ok(NONCE_BYTES) => {}
            _ => return Err(AuthFailure::BadNonce),
        }
        let mut expiry = [0u8; 4];
        expiry.copy_from_slice(&raw[..4]);
        let expiry = u64::from(u32::from_be_bytes(expiry));
        self.mac(expiry, ip)
            .verify_truncated_left(&raw[4..])
            .map_err(|_| AuthFailure::BadNonce)?;
        if expiry <= now_s {
            return Err(AuthFailure::StaleNonce);
        }
        Ok(())
    }

    fn mac(&self, expiry: u64, ip: IpAddr) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(&expiry.to_be_bytes());
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        mac
    }

    fn tag(&self, expiry: u64, ip: IpAddr) -> [u8; 32] {
        self.mac(expiry, ip).finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn nonce_round_trip_expiry_and_forgery() {
        let n = Nonces::new([7; 32], 600);
        let nonce = n.mint(IP, 1_000);
        assert_eq!(nonce.len(), 19);
        assert_eq!(n.check(&nonce, IP, 1_000), Ok(()));
        assert_eq!(n.check(&nonce, IP, 1_599), Ok(()));
        assert_eq!(n.check(&nonce, IP, 1_600), Err(AuthFailure::StaleNonce));
        let other_ip = "192.0.2.2".parse().unwrap();
        assert_eq!(n.check(&nonce, other_ip, 1_000), Err(AuthFailure::BadNonce));
        // Extending the expiry by hand breaks the tag.
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[..4].copy_from_slice(&999_999u32.to_be_bytes());
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(n.check(&forged, IP, 1_000), Err(AuthFailure::BadNonce));
        let other_relay = Nonces::new([8; 32], 600);
        assert_eq!(
            other_relay.check(&nonce, IP, 1_000),
            Err(AuthFailure::BadNonce)
        );
        for junk in [
            "",
            "zz",
            &"g".repeat(19),
            &"!".repeat(19),
            "é".repeat(10).as_str(),
        ] {
            assert_eq!(n.check(junk, IP, 0), Err(AuthFailure::BadNonce));
        }
    }

    #[test]
    fn fixed_and_rest_users() {
        let users = Users {
            fixed: HashMap::from([("alice".into(), "pw".into())]),
            rest_secret: Some("s".into()),
        };
        assert_eq!(users.password("alice", 0), Ok("pw".into()));
        assert_eq!(
            users.password("2000:bob", 1_999),
            Ok(credentials::password_for(b"s", "2000:bob"))
        );
        assert_eq!(users.password("2000:bob", 2_000), Err(AuthFailure::Expired));
        assert_eq!(users.password("bob", 0), Err(AuthFailure::UnknownUser));
        let fixed_only = Users {
            rest_secret: None,
            ..users
        };
        assert_eq!(
            fixed_only.password("2000:bob", 0),
            Err(AuthFailure::UnknownUser)
        );
        assert!(!format!("{fixed_only:?}").contains("pw"));
    }
}

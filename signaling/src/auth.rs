//! Who may open a session: open mode, or a JWT whose `sub` is the user.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use signaling_protocol::UserName;

/// How `hello` is authenticated.
/// Built once at start, so the size of the `Jwt` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Default)]
pub enum Auth {
    /// Any user name is accepted (demos, tests). The server warns at start.
    #[default]
    Open,
    /// `hello.token` must be a JWT, signed with this key, whose `sub` is the user name,
    /// whose `exp` is in the future and whose `nbf`, if any, is not (60 s of clock skew
    /// allowed); with an audience or issuer configured, `aud` and `iss` must name them.
    Jwt(JwtAuth),
}

/// The algorithms a public key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JwtAlgorithm {
    /// RSA with SHA-256.
    Rs256,
    /// Ed25519.
    #[value(name = "eddsa")]
    EdDsa,
}

/// Verifies tokens with one key.
#[derive(Clone)]
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

/// Why a public key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("not a usable {alg:?} public key (PEM): {source}")]
pub struct KeyError {
    alg: JwtAlgorithm,
    source: jsonwebtoken::errors::Error,
}

/// Why a `hello` was refused with `unauthorized`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("a token is required")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token subject does not match the user")]
    WrongSubject,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet (nbf)")]
    NotYetValid,
}

/// Clock skew allowed on `nbf` between the token's issuer and this server (jsonwebtoken's
/// default leeway).
const NBF_LEEWAY_S: u64 = 60;

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

impl JwtAuth {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// RS256 or EdDSA with a PEM public key.
    pub fn from_public_key_pem(alg: JwtAlgorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let (key, algorithm) = match alg {
            JwtAlgorithm::Rs256 => (DecodingKey::from_rsa_pem(pem), Algorithm::RS256),
            JwtAlgorithm::EdDsa => (DecodingKey::from_ed_pem(pem), Algorithm::EdDSA),
        };
        let key = key.map_err(|source| KeyError { alg, source })?;
        Ok(Self::with(key, algorithm))
    }

    /// Also requires `aud` to contain `audience` and `iss` to be `issuer`, where given.
    pub fn restricted_to(mut self, audience: Option<&str>, issuer: Option<&str>) -> Self {
        if let Some(audience) = audience {
            self.validation.validate_aud = true;
            self.validation.set_audience(&[audience]);
            self.validation.required_spec_claims.insert("aud".into());
        }
        if let Some(issuer) = issuer {
            self.validation.set_issuer(&[issuer]);
            self.validation.required_spec_claims.insert("iss".into());
        }
        self
    }

    fn with(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        // Expiry is checked against the injected clock in `verify`.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::from(["exp".to_string(), "sub".to_string()]);
        Self { key, validation }
    }

    fn verify(&self, token: &str, user: &UserName, now_unix: u64) -> Result<(), AuthError> {
        let data = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        if data.claims.sub != user.as_str() {
            return Err(AuthError::WrongSubject);
        }
        if data.claims.exp <= now_unix {
            return Err(AuthError::Expired);
        }
        if data
            .claims
            .nbf
            .is_some_and(|nbf| nbf > now_unix + NBF_LEEWAY_S)
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }
}

impl Auth {
    /// Checks `hello.token` for `user` at wall-clock time `now_unix`.
    pub(crate) fn check(
        &self,
        token: Option<&str>,
        user: &UserName,
        now_unix: u64,
    ) -> Result<(), AuthError> {
        match self {
            Auth::Open => Ok(()),
            Auth::Jwt(jwt) => jwt.verify(token.ok_or(AuthError::Missing)?, user, now_unix),
        }
    }

    /// Whether any user name is accepted.
    pub fn is_open(&self) -> bool {
        matches!(self, Auth::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn token(secret: &[u8], sub: &str, exp: u64) -> String {
        let claims = serde_json::json!({ "sub": sub, "exp": exp });
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn hs256() {
        let auth = Auth::Jwt(JwtAuth::hs256(b"k"));
        let alice = UserName::new("alice").unwrap();
        assert_eq!(
            auth.check(Some(&token(b"k", "alice", 100)), &alice, 99),
            Ok(())
        );
        assert_eq!(
            auth.check(Some(&token(b"k", "alice", 100)), &alice, 100),
            Err(AuthError::Expired)
        );
        assert_eq!(
            auth.check(Some(&token(b"k", "bob", 100)), &alice, 0),
            Err(AuthError::WrongSubject)
        );
        assert!(matches!(
            auth.check(Some(&token(b"x", "alice", 100)), &alice, 0),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(auth.check(None, &alice, 0), Err(AuthError::Missing));
        assert!(matches!(
            auth.check(Some("garbage"), &alice, 0),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(Auth::Open.check(None, &alice, 0), Ok(()));
    }

    #[test]
    fn bad_public_key_is_a_clear_error() {
        let err = JwtAuth::from_public_key_pem(JwtAlgorithm::Rs256, b"not a key")
            .err()
            .unwrap();
        assert!(err.to_string().contains("Rs256"), "{err}");
    }

    fn claims_token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap()
    }

    #[test]
    fn audience_issuer_and_not_before() {
        let alice = UserName::new("alice").unwrap();
        let auth = Auth::Jwt(JwtAuth::hs256(b"k").restricted_to(Some("calls"), Some("idp")));
        let good = serde_json::json!({"sub": "alice", "exp": 1000, "aud": "calls", "iss": "idp"});
        assert_eq!(
            auth.check(Some(&claims_token(good.clone())), &alice, 10),
            Ok(())
        );
        for (field, value) in [("aud", "other"), ("iss", "someone")] {
            let mut claims = good.clone();
            claims[field] = value.into();
            assert!(
                matches!(
                    auth.check(Some(&claims_token(claims)), &alice, 10),
                    Err(AuthError::Invalid(_))
                ),
                "wrong {field}"
            );
        }
        for field in ["aud", "iss"] {
            let mut claims = good.clone();
            claims.as_object_mut().unwrap().remove(field);
            assert!(
                matches!(
                    auth.check(Some(&claims_token(claims)), &alice, 10),
                    Err(AuthError::Invalid(_))
                ),
                "missing {field}"
            );
        }
        // nbf: honoured with 60 s of skew, also without audience or issuer configured.
        let plain = Auth::Jwt(JwtAuth::hs256(b"k"));
        let early = serde_json::json!({"sub": "alice", "exp": 1000, "nbf": 500});
        assert_eq!(
            plain.check(Some(&claims_token(early.clone())), &alice, 400),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            plain.check(Some(&claims_token(early.clone())), &alice, 440),
            Ok(())
        );
        assert_eq!(plain.check(Some(&claims_token(early)), &alice, 500), Ok(()));
    }
}

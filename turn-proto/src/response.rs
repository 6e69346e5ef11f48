//! Building the relay's STUN responses and indications with stun-rs.

use stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, MessageIntegritySha256, Nonce, Realm,
    UnknownAttributes,
};
use stun_rs::{
    ErrorCode as ErrorCodeType, HMACKey, MessageClass, MessageEncoderBuilder, MessageMethod,
    StunAttribute, StunMessage, StunMessageBuilder, TransactionId,
};

use crate::integrity::IntegrityKind;

/// The error codes the relay answers with (RFC 8489 §14.8, RFC 8656 §19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StunError {
    BadRequest = 400,
    Unauthenticated = 401,
    Forbidden = 403,
    UnknownAttribute = 420,
    AllocationMismatch = 437,
    StaleNonce = 438,
    AddressFamilyNotSupported = 440,
    WrongCredentials = 441,
    UnsupportedTransport = 442,
    PeerAddressFamilyMismatch = 443,
    AllocationQuotaReached = 486,
    InsufficientCapacity = 508,
}

impl StunError {
    /// The numeric code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The reason phrase of the RFC.
    pub fn reason(self) -> &'static str {
        match self {
            StunError::BadRequest => "Bad Request",
            StunError::Unauthenticated => "Unauthenticated",
            StunError::Forbidden => "Forbidden",
            StunError::UnknownAttribute => "Unknown Attribute",
            StunError::AllocationMismatch => "Allocation Mismatch",
            StunError::StaleNonce => "Stale Nonce",
            StunError::AddressFamilyNotSupported => "Address Family not Supported",
            StunError::WrongCredentials => "Wrong Credentials",
            StunError::UnsupportedTransport => "Unsupported Transport Protocol",
            StunError::PeerAddressFamilyMismatch => "Peer Address Family Mismatch",
            StunError::AllocationQuotaReached => "Allocation Quota Reached",
            StunError::InsufficientCapacity => "Insufficient Capacity",
        }
    }
}

/// How to sign a response: with the request's integrity kind and the user's key.
#[derive(Clone)]
pub struct Signer {
    pub kind: IntegrityKind,
    pub key: HMACKey,
}

/// Encodes a message; appends the integrity attribute (if signed) and FINGERPRINT.
pub fn encode(
    method: MessageMethod,
    class: MessageClass,
    transaction: &TransactionId,
    attributes: Vec<StunAttribute>,
    signer: Option<&Signer>,
) -> Vec<u8> {
    let mut builder = StunMessageBuilder::new(method, class).with_transaction_id(*transaction);
    for attr in attributes {
        builder = builder.with_attribute(attr);
    }
    if let Some(s) = signer {
        builder = match s.kind {
            IntegrityKind::Sha1 => builder.with_attribute(MessageIntegrity::new(s.key.clone())),
            IntegrityKind::Sha256 => {
                builder.with_attribute(MessageIntegritySha256::new(s.key.clone()))
            }
        };
    }
    let msg: StunMessage = builder.with_attribute(Fingerprint::default()).build();
    let mut buf = vec![0u8; 1500];
    let encoder = MessageEncoderBuilder::default().build();
    match encoder.encode(&mut buf, &msg) {
        Ok(len) => {
            buf.truncate(len);
            buf
        }
        // Only our own attributes go in, all of bounded size: this does not happen.
        Err(e) => {
            tracing::error!(error = ?e, "could not encode a response");
            Vec::new()
        }
    }
}

/// A success response.
pub fn success(
    method: MessageMethod,
    transaction: &TransactionId,
    attributes: Vec<StunAttribute>,
    signer: Option<&Signer>,
) -> Vec<u8> {
    encode(
        method,
        MessageClass::SuccessResponse,
        transaction,
        attributes,
        signer,
    )
}

/// An error response with `extra` attributes after ERROR-CODE.
pub fn error(
    method: MessageMethod,
    transaction: &TransactionId,
    code: StunError,
    extra: Vec<StunAttribute>,
    signer: Option<&Signer>,
) -> Vec<u8> {
    error_with_reason(method, transaction, code, code.reason(), extra, signer)
}

/// ERROR-CODE (`code`, `reason`), then `extra`, signed with `signer` if any.
fn error_with_reason(
    method: MessageMethod,
    transaction: &TransactionId,
    code: StunError,
    reason: &str,
    extra: Vec<StunAttribute>,
    signer: Option<&Signer>,
) -> Vec<u8> {
    let mut attributes = Vec::with_capacity(extra.len() + 1);
    if let Ok(e) = ErrorCodeType::new(code.code(), reason) {
        attributes.push(ErrorCode::new(e).into());
    }
    attributes.extend(extra);
    encode(
        method,
        MessageClass::ErrorResponse,
        transaction,
        attributes,
        signer,
    )
}

/// 401 or 438 with our REALM and a fresh NONCE (unsigned: the client's key is not known).
/// It answers requests anyone can send with a spoofed source, so it carries nothing more:
/// no reason phrase ([`unauthenticated_error`]).
pub fn challenge(
    method: MessageMethod,
    transaction: &TransactionId,
    code: StunError,
    realm: &str,
    nonce: &str,
) -> Vec<u8> {
    let mut extra: Vec<StunAttribute> = Vec::with_capacity(2);
    if let Ok(r) = Realm::new(realm) {
        extra.push(r.into());
    }
    if let Ok(n) = Nonce::new(nonce) {
        extra.push(n.into());
    }
    terse_error(method, transaction, code, extra)
}

/// An error answering an unauthenticated request: ERROR-CODE with an empty reason phrase
/// (RFC 8489 §14.8 allows it; the code is what clients act on), so that the answer is as
/// small as it can be: 36 bytes with FINGERPRINT.
pub fn unauthenticated_error(
    method: MessageMethod,
    transaction: &TransactionId,
    code: StunError,
) -> Vec<u8> {
    terse_error(method, transaction, code, Vec::new())
}

fn terse_error(
    method: MessageMethod,
    transaction: &TransactionId,
    code: StunError,
    extra: Vec<StunAttribute>,
) -> Vec<u8> {
    error_with_reason(method, transaction, code, "", extra, None)
}

/// 420 listing the comprehension-required attributes we do not understand.
pub fn unknown_attributes(
    method: MessageMethod,
    transaction: &TransactionId,
    unknown: &[u16],
) -> Vec<u8> {
    let extra = vec![UnknownAttributes::from(unknown).into()];
    error(
        method,
        transaction,
        StunError::UnknownAttribute,
        extra,
        None,
    )
}

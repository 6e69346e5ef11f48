//! Parsing with errors precise enough to tell the sender what was wrong.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{CallId, ClientMessage, MAX_META_BYTES, PROTOCOL_VERSION, ServerMessage};

/// Why a text frame is not a valid message. Every variant maps to `bad_message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The frame is not JSON; carries serde_json's explanation.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object (an array, a string, …).
    #[error("a message must be a JSON object")]
    NotObject,
    /// No `type`, or a `type` that is not a string.
    #[error("missing string field `type`")]
    MissingType,
    /// A `type` this side does not know (cut to 64 characters).
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known `type` with a missing or wrong field.
    #[error("bad `{kind}` message: {detail}")]
    BadField {
        /// The message's `type`.
        kind: String,
        /// What was wrong, from serde (cut to 200 characters).
        detail: String,
        /// The message's `call_id`, if it held a valid one, so the `error` can name the call.
        call_id: Option<CallId>,
    },
    /// `invite.meta` over [`MAX_META_BYTES`] serialized: its size, and the invite's call.
    #[error("`meta` is {0} bytes, at most {MAX_META_BYTES} allowed")]
    MetaTooLarge(usize, Option<CallId>),
    /// `hello.version` is not [`PROTOCOL_VERSION`].
    #[error("protocol version {0} is not supported; this server speaks {PROTOCOL_VERSION}")]
    Version(u32),
}

impl ParseError {
    /// The call the bad message was about, when it named a valid one.
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::BadField { call_id, .. } | Self::MetaTooLarge(_, call_id) => call_id.as_ref(),
            _ => None,
        }
    }
}

const CLIENT_TYPES: &[&str] = &[
    "hello",
    "invite",
    "accept",
    "reject",
    "candidate",
    "renegotiate",
    "hangup",
    "ping",
];

/// Parses one text frame from a client.
///
/// Unknown fields are ignored; an unknown `type`, a missing or wrong field, an
/// oversized `meta` or an unsupported `hello.version` is an error.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    let msg: ClientMessage = parse_tagged(text, CLIENT_TYPES)?;
    match &msg {
        ClientMessage::Hello(h) if h.version != PROTOCOL_VERSION => {
            Err(ParseError::Version(h.version))
        }
        ClientMessage::Invite(inv) => match &inv.meta {
            Some(meta) => {
                let len = serde_json::to_vec(meta).map_or(usize::MAX, |v| v.len());
                if len > MAX_META_BYTES {
                    Err(ParseError::MetaTooLarge(len, Some(inv.call_id.clone())))
                } else {
                    Ok(msg)
                }
            }
            None => Ok(msg),
        },
        _ => Ok(msg),
    }
}

const SERVER_TYPES: &[&str] = &[
    "welcome",
    "invite",
    "ringing",
    "accepted",
    "candidate",
    "renegotiate",
    "ended",
    "error",
    "pong",
];

/// Parses one text frame from the server (for clients: the SDK, tests, tools).
pub fn parse_server_message(text: &str) -> Result<ServerMessage, ParseError> {
    parse_tagged(text, SERVER_TYPES)
}

fn parse_tagged<T: DeserializeOwned>(text: &str, known: &[&str]) -> Result<T, ParseError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Value::Object(map) = &value else {
        return Err(ParseError::NotObject);
    };
    let kind = match map.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(ParseError::MissingType),
    };
    if !known.contains(&kind.as_str()) {
        return Err(ParseError::UnknownType(truncate(&kind, 64)));
    }
    let call_id = map
        .get("call_id")
        .and_then(Value::as_str)
        .and_then(|s| CallId::new(s).ok());
    serde_json::from_value(value).map_err(|e| ParseError::BadField {
        kind,
        detail: truncate(&e.to_string(), 200),
        call_id,
    })
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EndReason, IceCandidate, RejectReason, UserName};

    #[test]
    fn server_messages_name_their_call() {
        let cases = [
            (
                r#"{"type":"invite","call_id":"c1","from":"a","offer":"v=0"}"#,
                Some("c1"),
            ),
            (r#"{"type":"ringing","call_id":"c2"}"#, Some("c2")),
            (
                r#"{"type":"ended","call_id":"c3","reason":"busy"}"#,
                Some("c3"),
            ),
            (
                r#"{"type":"error","code":"bad_state","message":"m","call_id":"c4"}"#,
                Some("c4"),
            ),
            (
                r#"{"type":"error","code":"bad_message","message":"m"}"#,
                None,
            ),
            (r#"{"type":"pong"}"#, None),
        ];
        for (text, id) in cases {
            let msg = parse_server_message(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(msg.call_id().map(CallId::as_str), id, "{text}");
        }
    }

    #[test]
    fn parses_every_client_message() {
        let cases = [
            r#"{"type":"hello","version":1,"user":"alice","token":"t","resume":"r"}"#,
            r#"{"type":"invite","call_id":"c1","to":"bob","offer":"v=0","meta":{"video":true}}"#,
            r#"{"type":"accept","call_id":"c1","answer":"v=0"}"#,
            r#"{"type":"reject","call_id":"c1","reason":"busy"}"#,
            r#"{"type":"candidate","call_id":"c1","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}"#,
            r#"{"type":"candidate","call_id":"c1","candidate":null}"#,
            r#"{"type":"renegotiate","call_id":"c1","description":{"type":"offer","sdp":"v=0"}}"#,
            r#"{"type":"hangup","call_id":"c1"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","received":12}"#,
        ];
        for text in cases {
            let msg = parse_client_message(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                msg.kind(),
                serde_json::from_str::<Value>(text).unwrap()["type"]
            );
        }
    }

    #[test]
    fn reject_reason_defaults_to_declined_and_unknown_fields_are_ignored() {
        let msg = parse_client_message(r#"{"type":"reject","call_id":"c1","extra":[1,2]}"#);
        let Ok(ClientMessage::Reject(r)) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(r.reason, RejectReason::Declined);
    }

    #[test]
    fn candidate_must_be_present_but_may_be_null() {
        let err = parse_client_message(r#"{"type":"candidate","call_id":"c1"}"#).unwrap_err();
        assert!(matches!(err, ParseError::BadField { .. }), "{err}");
        assert_eq!(err.call_id().map(CallId::as_str), Some("c1"));
    }

    #[test]
    fn errors_are_precise() {
        assert!(matches!(
            parse_client_message("nope"),
            Err(ParseError::NotJson(_))
        ));
        assert_eq!(parse_client_message("[1]"), Err(ParseError::NotObject));
        assert_eq!(
            parse_client_message(r#"{"type":3}"#),
            Err(ParseError::MissingType)
        );
        assert_eq!(
            parse_client_message(r#"{"type":"dance"}"#),
            Err(ParseError::UnknownType("dance".into()))
        );
        assert_eq!(
            parse_client_message(r#"{"type":"hello","version":2,"user":"a"}"#),
            Err(ParseError::Version(2))
        );
        let bad_to =
            parse_client_message(r#"{"type":"invite","call_id":"c1","to":"b b","offer":""}"#);
        assert!(matches!(bad_to, Err(ParseError::BadField { .. })));
        let bad_id = parse_client_message(r#"{"type":"hangup","call_id":"c.1"}"#);
        assert!(matches!(
            bad_id,
            Err(ParseError::BadField { call_id: None, .. })
        ));
        let big = format!(
            r#"{{"type":"invite","call_id":"c1","to":"bob","offer":"","meta":"{}"}}"#,
            "x".repeat(MAX_META_BYTES)
        );
        assert!(matches!(
            parse_client_message(&big),
            Err(ParseError::MetaTooLarge(..))
        ));
    }

    #[test]
    fn server_messages_round_trip() {
        let c1 = CallId::new("c1").unwrap();
        let msgs = [
            ServerMessage::ended(c1.clone(), EndReason::AnsweredElsewhere),
            ServerMessage::Candidate(crate::Candidate {
                call_id: c1.clone(),
                candidate: None,
            }),
            ServerMessage::Candidate(crate::Candidate {
                call_id: c1.clone(),
                candidate: Some(IceCandidate {
                    candidate: "candidate:1".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                    username_fragment: None,
                }),
            }),
            ServerMessage::Invite(crate::IncomingInvite {
                call_id: c1.clone(),
                from: UserName::new("alice").unwrap(),
                offer: "v=0".into(),
                meta: None,
            }),
            ServerMessage::error(crate::ErrorCode::UnknownCall, "no such call", Some(c1)),
            ServerMessage::Pong,
        ];
        for msg in msgs {
            let text = serde_json::to_string(&msg).unwrap();
            assert_eq!(parse_server_message(&text).unwrap(), msg, "{text}");
        }
        let text = serde_json::to_string(&ServerMessage::ended(
            CallId::new("x").unwrap(),
            EndReason::PeerLost,
        ))
        .unwrap();
        assert_eq!(
            text,
            r#"{"type":"ended","call_id":"x","reason":"peer_lost"}"#
        );
    }
}

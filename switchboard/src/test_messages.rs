//! The client messages the switchboard's tests send, and the replies they expect: shared
//! by the single-board tests (tests.rs) and the cluster tests (cluster_tests.rs).

use signaling_protocol::{
    Accept, CallId, CallRef, ClientMessage, EndReason, Invite, ServerMessage, UserName,
};

pub fn id(s: &str) -> CallId {
    CallId::new(s).unwrap()
}

pub fn ended(call_id: &str, reason: EndReason) -> ServerMessage {
    ServerMessage::ended(id(call_id), reason)
}

/// `invite` of `to` as `call_id`, offer "o".
pub fn invite(call_id: &str, to: &str) -> ClientMessage {
    ClientMessage::Invite(Invite {
        call_id: id(call_id),
        to: UserName::new(to).unwrap(),
        offer: "o".into(),
        meta: None,
    })
}

/// `accept` of `call_id`, answer "a".
pub fn accept(call_id: &str) -> ClientMessage {
    ClientMessage::Accept(Accept {
        call_id: id(call_id),
        answer: "a".into(),
    })
}

pub fn hangup(call_id: &str) -> ClientMessage {
    ClientMessage::Hangup(CallRef {
        call_id: id(call_id),
    })
}

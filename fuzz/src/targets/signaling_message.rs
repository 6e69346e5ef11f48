//! `signaling_message`: any bytes as the text of a WebSocket frame, parsed as a client
//! message (what the server reads) and as a server message (what the SDK reads).
//!
//! Checks: no panic; a message that parses serialises back to JSON that parses to the
//! same message (nothing the server accepts is lost or changed on the way out).

use signaling_protocol::{
    ClientMessage, ServerMessage, parse_client_message, parse_server_message,
};

use super::Target;

pub(super) const TARGET: Target = Target {
    name: "signaling_message",
    about: "signaling JSON parsing (client and server messages) and its round trip",
    run,
    seeds,
    max_len: 4096,
};

fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(msg) = parse_client_message(&text) {
        let json = serde_json::to_string(&msg).expect("a parsed message serialises");
        let again: ClientMessage = parse_client_message(&json)
            .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
        assert_eq!(again, msg, "round trip of {json}");
    }
    if let Ok(msg) = parse_server_message(&text) {
        let json = serde_json::to_string(&msg).expect("a parsed message serialises");
        let again: ServerMessage = parse_server_message(&json)
            .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
        assert_eq!(again, msg, "round trip of {json}");
    }
}

fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{"type":"hello","version":1,"user":"alice","token":"t","resume":"r","received":3}"#,
        r#"{"type":"invite","call_id":"c1","to":"bob","offer":"v=0\r\n","meta":{"video":true}}"#,
        r#"{"type":"accept","call_id":"c1","answer":"v=0\r\n"}"#,
        r#"{"type":"reject","call_id":"c1","reason":"busy"}"#,
        r#"{"type":"candidate","call_id":"c1","candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host","sdp_mid":"0","sdp_m_line_index":0,"username_fragment":"u"}}"#,
        r#"{"type":"candidate","call_id":"c1","candidate":null}"#,
        r#"{"type":"renegotiate","call_id":"c1","description":{"type":"offer","sdp":"v=0"}}"#,
        r#"{"type":"hangup","call_id":"c1"}"#,
        r#"{"type":"ping","received":7}"#,
        r#"{"type":"welcome","version":1,"user":"a","session":"s","resumed":false,"heartbeat_s":20,"resume_ttl_s":30,"ice_servers":[{"urls":["turn:x"],"username":"u","credential":"p"}],"rate_per_s":50,"rate_burst":200}"#,
        r#"{"type":"invite","call_id":"c1","from":"alice","offer":"v=0"}"#,
        r#"{"type":"ringing","call_id":"c1"}"#,
        r#"{"type":"accepted","call_id":"c1","answer":"v=0"}"#,
        r#"{"type":"ended","call_id":"c1","reason":"answered_elsewhere"}"#,
        r#"{"type":"error","code":"rate_limited","message":"slow down","call_id":"c1"}"#,
        r#"{"type":"pong"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

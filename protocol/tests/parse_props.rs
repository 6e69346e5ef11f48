//! Property tests: no byte sequence and no JSON value makes the parsers panic, and
//! whatever parses re-serializes to something that parses to the same message.

use proptest::prelude::*;
use serde_json::Value;
use signaling_protocol::{parse_client_message, parse_server_message};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::String),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("call_id".to_string()),
                    Just("to".to_string()),
                    Just("candidate".to_string()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like real messages, with a known `type` and likely field names.
fn message_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("hello"),
        Just("invite"),
        Just("accept"),
        Just("reject"),
        Just("candidate"),
        Just("renegotiate"),
        Just("hangup"),
        Just("ping"),
        Just("welcome"),
        Just("ended"),
        Just("error"),
    ];
    let field = prop_oneof![
        Just("version"),
        Just("user"),
        Just("call_id"),
        Just("to"),
        Just("offer"),
        Just("answer"),
        Just("meta"),
        Just("reason"),
        Just("candidate"),
        Just("description"),
        Just("code"),
        Just("message"),
    ];
    (kind, prop::collection::vec((field, json_value()), 0..8)).prop_map(|(kind, fields)| {
        let mut map = serde_json::Map::new();
        map.insert("type".into(), Value::from(kind));
        for (k, v) in fields {
            map.insert(k.into(), v);
        }
        Value::Object(map)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_client_message(&text);
        let _ = parse_server_message(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let text = value.to_string();
        let _ = parse_client_message(&text);
        let _ = parse_server_message(&text);
    }

    #[test]
    fn message_like_json_round_trips(value in message_like()) {
        let text = value.to_string();
        if let Ok(msg) = parse_client_message(&text) {
            let again = serde_json::to_string(&msg).unwrap();
            prop_assert_eq!(parse_client_message(&again).unwrap(), msg);
        }
        if let Ok(msg) = parse_server_message(&text) {
            let again = serde_json::to_string(&msg).unwrap();
            prop_assert_eq!(parse_server_message(&again).unwrap(), msg);
        }
    }
}

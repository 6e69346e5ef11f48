//! What an app can choose: for the client, for each call, for each data channel.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use signaling_protocol::IceServer;

/// Which ICE candidates a call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates: direct when possible.
    #[default]
    All,
    /// Relay candidates only: media always goes through TURN (hides the IP addresses).
    RelayOnly,
}

/// How the peer connection of each call is set up.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Relay-only or all candidates.
    pub policy: IcePolicy,
    /// ICE servers used in addition to the ones the server's `welcome` lists.
    pub extra_ice_servers: Vec<IceServer>,
    /// Local UDP addresses to gather host candidates on. `0.0.0.0:0` (the default)
    /// means every interface but loopback, each on an ephemeral port; a concrete address
    /// such as `127.0.0.1:0` binds exactly that one.
    pub bind: Vec<SocketAddr>,
    /// Per data channel: how many bytes `send` may have outstanding before it waits.
    pub data_channel_send_buffer: usize,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            policy: IcePolicy::All,
            extra_ice_servers: Vec::new(),
            bind: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            data_channel_send_buffer: 1 << 20,
        }
    }
}

/// Options of a [`Client`](crate::Client).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The default peer options of every call.
    pub peer: PeerOptions,
    /// How long opening the WebSocket and getting `welcome` may take.
    pub connect_timeout: Duration,
    /// First reconnect delay after a dropped socket (doubled up to `reconnect_max`).
    pub reconnect_base: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// CA certificates (PEM, one or more) trusted for `wss://` besides the built-in
    /// Mozilla roots: for a self-hosted server whose certificate a private CA signed.
    /// E.g. `Some(std::fs::read("ca.pem")?)`. A PEM without a certificate is
    /// [`Error::Invalid`](crate::Error::Invalid) from
    /// [`Client::connect`](crate::Client::connect).
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            peer: PeerOptions::default(),
            connect_timeout: Duration::from_secs(10),
            reconnect_base: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            extra_ca_pem: None,
        }
    }
}

/// The kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Opus, 48 kHz, stereo.
    Audio,
    /// VP8, 90 kHz clock.
    Video,
}

/// How a data channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Ordered and retransmitted until delivered (like TCP).
    #[default]
    Reliable,
    /// Unordered, never retransmitted: for state that the next message replaces.
    Unreliable,
}

/// A data channel to open with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The channel's name on both sides ([`DataChannel::label`](crate::DataChannel::label),
    /// [`Call::data_channel`](crate::Call::data_channel)); a browser sees it as
    /// `RTCDataChannel.label`.
    pub label: String,
    /// Reliable and ordered, or neither.
    pub delivery: Delivery,
}

impl ChannelSpec {
    /// A reliable channel named `label`.
    pub fn reliable(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            delivery: Delivery::Reliable,
        }
    }

    /// An unreliable channel named `label`.
    pub fn unreliable(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            delivery: Delivery::Unreliable,
        }
    }
}

/// What an outgoing call starts with: at least one track or data channel.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Local tracks to send from the start (more can be added mid-call).
    pub tracks: Vec<MediaKind>,
    /// Data channels to open with the call (more can be opened mid-call).
    pub channels: Vec<ChannelSpec>,
    /// Free JSON for the callee (at most 4 KiB serialized), e.g. a display name.
    pub meta: Option<Value>,
    /// Overrides the client's peer options for this call.
    pub peer: Option<PeerOptions>,
}

/// What an answered call starts with.
#[derive(Debug, Clone, Default)]
pub struct AcceptOptions {
    /// Local tracks to send back.
    pub tracks: Vec<MediaKind>,
    /// Overrides the client's peer options for this call.
    pub peer: Option<PeerOptions>,
}

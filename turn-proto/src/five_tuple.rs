//! The five-tuple that names an allocation (RFC 8656 §2): client address, server address,
//! transport. Over TCP and TLS one connection carries at most one allocation.

use std::net::SocketAddr;

/// The transport between a client and the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams: one STUN message or ChannelData per datagram.
    Udp,
    /// A TCP stream of frames (RFC 8656 §12.5).
    Tcp,
    /// The same frames over TLS (`turns:`).
    Tls,
}

impl Transport {
    /// Streams carry ChannelData padded to a multiple of 4 (RFC 8656 §12.5).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// `udp`, `tcp` or `tls`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// Where a client's packets come from and arrive: the key of its allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// The client's address as the relay sees it.
    pub client: SocketAddr,
    /// The relay's listening address the client reached.
    pub server: SocketAddr,
    /// How the client reached it.
    pub transport: Transport,
}

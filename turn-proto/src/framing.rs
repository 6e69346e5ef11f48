//! What arrives on a TURN port: a STUN message or ChannelData (RFC 8656 §12), and how
//! to find where one ends on a stream (TCP/TLS).
//!
//! stun-rs decodes STUN but knows nothing of ChannelData, so the demultiplexing, the
//! ChannelData header and the stream framing are written here. This is the hot path:
//! nothing here allocates. A shell needs only [`stream_frame_len`] (to cut a TCP/TLS
//! stream into frames) and [`CHANNEL_HEADER`] (the room to leave in front of peer data
//! for [`Relay::handle_peer`](crate::Relay::handle_peer)); the rest serves the core.

/// Size of a STUN header.
pub(crate) const STUN_HEADER: usize = 20;
/// Size of a ChannelData header: channel number and length, 2 bytes each.
pub const CHANNEL_HEADER: usize = 4;
/// The STUN magic cookie (RFC 8489 §5).
pub(crate) const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The channel numbers a client may bind. RFC 8656 §12 narrowed them to 0x4000–0x4FFF;
/// RFC 5766 allowed up to 0x7FFF and clients still use that range (coturn's
/// `turnutils_uclient` binds 0x6xxx), so it is accepted, as coturn does.
pub(crate) const CHANNEL_MIN: u16 = 0x4000;
/// The last channel number a client may bind (see [`CHANNEL_MIN`]).
pub(crate) const CHANNEL_MAX: u16 = 0x7FFF;

/// What a datagram or a stream frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet {
    /// A STUN message of `len` bytes (header included).
    Stun { len: usize },
    /// ChannelData for `channel`, whose application data is `data_len` bytes after the header.
    ChannelData { channel: u16, data_len: usize },
}

/// Why bytes are not a packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Fewer bytes than a header.
    #[error("fewer bytes than a header")]
    Truncated,
    /// The first byte (or the channel number) is neither STUN nor ChannelData.
    #[error("first byte {0:#04x} is neither STUN nor ChannelData")]
    UnknownType(u8),
    /// A STUN length that is not a multiple of 4 or runs past the packet.
    #[error("STUN length is not a multiple of 4 or exceeds the packet")]
    BadStunLength,
    /// A STUN header without the magic cookie.
    #[error("no STUN magic cookie")]
    NoMagicCookie,
    /// A ChannelData length that runs past the datagram.
    #[error("ChannelData length exceeds the packet")]
    BadChannelLength,
}

/// Classifies one datagram (UDP): the whole datagram must be the packet, ChannelData may
/// carry up to 3 bytes of padding after its data.
pub(crate) fn classify_datagram(buf: &[u8]) -> Result<Packet, FramingError> {
    let packet = peek(buf)?;
    let needed = match packet {
        Packet::Stun { len } => {
            if len != buf.len() {
                return Err(FramingError::BadStunLength);
            }
            len
        }
        Packet::ChannelData { data_len, .. } => CHANNEL_HEADER + data_len,
    };
    if needed > buf.len() {
        return Err(match packet {
            Packet::Stun { .. } => FramingError::BadStunLength,
            Packet::ChannelData { .. } => FramingError::BadChannelLength,
        });
    }
    Ok(packet)
}

/// Reads the header at the start of `buf` (which may hold more or less than one packet).
pub(crate) fn peek(buf: &[u8]) -> Result<Packet, FramingError> {
    let first = *buf.first().ok_or(FramingError::Truncated)?;
    match first >> 6 {
        0 => {
            if buf.len() < STUN_HEADER {
                return Err(FramingError::Truncated);
            }
            let body = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            if !body.is_multiple_of(4) {
                return Err(FramingError::BadStunLength);
            }
            if u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != MAGIC_COOKIE {
                return Err(FramingError::NoMagicCookie);
            }
            Ok(Packet::Stun {
                len: STUN_HEADER + body,
            })
        }
        1 => {
            if buf.len() < CHANNEL_HEADER {
                return Err(FramingError::Truncated);
            }
            let channel = u16::from_be_bytes([buf[0], buf[1]]);
            if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
                return Err(FramingError::UnknownType(first));
            }
            let data_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            Ok(Packet::ChannelData { channel, data_len })
        }
        _ => Err(FramingError::UnknownType(first)),
    }
}

/// On a stream, how many bytes the packet at the start of `buf` occupies, padding
/// included (ChannelData is padded to a multiple of 4 over TCP/TLS, RFC 8656 §12.5).
/// `Ok(None)` means more bytes are needed to know.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, FramingError> {
    match peek(buf) {
        Err(FramingError::Truncated) => Ok(None),
        Err(e) => Err(e),
        Ok(Packet::Stun { len }) => Ok(Some(len)),
        Ok(Packet::ChannelData { data_len, .. }) => Ok(Some(padded(CHANNEL_HEADER + data_len))),
    }
}

/// `len` rounded up to a multiple of 4.
pub(crate) const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Writes a ChannelData header into `buf[..4]` for `data_len` bytes of data that the
/// caller already placed at `buf[4..4 + data_len]`; with `pad`, zeroes the padding up to
/// a multiple of 4. Returns the packet's length. `buf` must have room for the padding.
pub(crate) fn write_channel_header(
    buf: &mut [u8],
    channel: u16,
    data_len: usize,
    pad: bool,
) -> usize {
    buf[..2].copy_from_slice(&channel.to_be_bytes());
    // Callers never pass more than a datagram (< 65,536 bytes).
    buf[2..4].copy_from_slice(&(data_len as u16).to_be_bytes());
    let len = CHANNEL_HEADER + data_len;
    if !pad {
        return len;
    }
    let total = padded(len);
    buf[len..total].fill(0);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(body: u16) -> Vec<u8> {
        let mut b = vec![0u8; STUN_HEADER + body as usize];
        b[0..2].copy_from_slice(&1u16.to_be_bytes());
        b[2..4].copy_from_slice(&body.to_be_bytes());
        b[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        b
    }

    #[test]
    fn stun_datagrams() {
        assert_eq!(classify_datagram(&stun(8)), Ok(Packet::Stun { len: 28 }));
        let mut short = stun(8);
        short.pop();
        assert_eq!(classify_datagram(&short), Err(FramingError::BadStunLength));
        let mut odd = stun(8);
        odd[3] = 7;
        assert_eq!(classify_datagram(&odd), Err(FramingError::BadStunLength));
        let mut no_cookie = stun(0);
        no_cookie[4] = 0;
        assert_eq!(
            classify_datagram(&no_cookie),
            Err(FramingError::NoMagicCookie)
        );
        assert_eq!(
            classify_datagram(&stun(0)[..19]),
            Err(FramingError::Truncated)
        );
        assert_eq!(classify_datagram(&[]), Err(FramingError::Truncated));
    }

    #[test]
    fn channel_data_datagrams() {
        let mut b = [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0];
        assert_eq!(
            classify_datagram(&b),
            Ok(Packet::ChannelData {
                channel: 0x4001,
                data_len: 3
            })
        );
        b[3] = 5;
        assert_eq!(classify_datagram(&b), Err(FramingError::BadChannelLength));
        // 0x80.. and 0xC0.. are other protocols (RTP, DTLS…).
        for first in [0x80, 0xC0, 0xFF] {
            assert_eq!(
                classify_datagram(&[first, 0, 0, 0]),
                Err(FramingError::UnknownType(first))
            );
        }
    }

    #[test]
    fn stream_framing_pads_channel_data() {
        assert_eq!(stream_frame_len(&[0x40, 0, 0, 5]), Ok(Some(12)));
        assert_eq!(stream_frame_len(&[0x40, 0, 0, 8]), Ok(Some(12)));
        assert_eq!(stream_frame_len(&[0x40, 0]), Ok(None));
        assert_eq!(stream_frame_len(&stun(4)[..10]), Ok(None));
        assert_eq!(stream_frame_len(&stun(4)), Ok(Some(24)));
        assert_eq!(
            stream_frame_len(&[0x90]),
            Err(FramingError::UnknownType(0x90))
        );
    }

    #[test]
    fn channel_header_zeroes_padding() {
        let mut buf = [0xAAu8; 12];
        buf[4..9].copy_from_slice(b"hello");
        assert_eq!(write_channel_header(&mut buf, 0x4FFF, 5, true), 12);
        assert_eq!(
            &buf,
            &[0x4F, 0xFF, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0]
        );
        assert_eq!(write_channel_header(&mut buf, 0x4000, 5, false), 9);
    }
}

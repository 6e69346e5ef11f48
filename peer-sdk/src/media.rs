//! Media tracks: local ones fed with encoded samples (Opus, VP8), remote ones read as
//! RTP packets.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{Mutex, mpsc};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

use crate::clock;
use crate::error::{Error, Result};
use crate::options::MediaKind;

/// How many received RTP packets wait for `recv`; older ones are dropped beyond that,
/// as late media is useless.
const RTP_QUEUE: usize = 1024;

impl MediaKind {
    fn codec(self) -> RTCRtpCodec {
        match self {
            MediaKind::Audio => RTCRtpCodec {
                mime_type: "audio/opus".to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            MediaKind::Video => RTCRtpCodec {
                mime_type: "video/VP8".to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
        }
    }

    fn rtc(self) -> RtpCodecKind {
        match self {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video => RtpCodecKind::Video,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A track this side sends. Feed it encoded frames: Opus packets for audio, VP8 frames
/// for video.
#[derive(Clone)]
pub struct LocalTrack {
    kind: MediaKind,
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    payload_type: Arc<OnceLock<u8>>,
}

impl std::fmt::Debug for LocalTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTrack")
            .field("kind", &self.kind)
            .field("ssrc", &self.ssrc)
            .finish()
    }
}

impl LocalTrack {
    /// Adds a track of `kind` to `pc`.
    pub(crate) async fn add(
        pc: &Arc<dyn PeerConnection>,
        kind: MediaKind,
        stream: &str,
    ) -> Result<Self> {
        let ssrc = clock::ssrc();
        let name = kind.name();
        let track = MediaStreamTrack::new(
            stream.to_owned(),
            format!("{stream}-{name}-{ssrc:08x}"),
            name.to_owned(),
            kind.rtc(),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: kind.codec(),
                ..Default::default()
            }],
        );
        let track = Arc::new(TrackLocalStaticSample::new(clock::now(), track)?);
        let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
        Ok(Self {
            kind,
            track,
            sender,
            ssrc,
            payload_type: Arc::default(),
        })
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Sends one encoded frame lasting `duration` (20 ms for a usual Opus packet, 1/fps
    /// for a video frame). Fails with [`Error::NotNegotiated`] until the call is set up.
    pub async fn write_sample(&self, data: Bytes, duration: Duration) -> Result<()> {
        let payload_type = match self.payload_type.get() {
            Some(pt) => *pt,
            None => {
                let params = self.sender.get_parameters().await?;
                let pt = params
                    .rtp_parameters
                    .codecs
                    .first()
                    .map(|c| c.payload_type)
                    .ok_or(Error::NotNegotiated)?;
                *self.payload_type.get_or_init(|| pt)
            }
        };
        let sample = Sample {
            data,
            duration,
            ..Sample::new(clock::now())
        };
        self.track
            .sample_writer(self.ssrc, payload_type)
            .write_sample(&sample)
            .await?;
        Ok(())
    }
}

/// An RTP packet received on a remote track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// The RTP payload type, as negotiated in the SDP (e.g. 111 for Opus).
    pub payload_type: u8,
    /// Increments by one per packet (wrapping): gaps are lost packets, and it orders
    /// packets that arrive out of order.
    pub sequence_number: u16,
    /// When the payload was sampled, in the codec's clock (48 kHz for Opus, 90 kHz for
    /// VP8); every packet of one video frame has the same.
    pub timestamp: u32,
    /// The synchronization source: which stream of the sender this packet belongs to.
    pub ssrc: u32,
    /// For video, set on the last packet of a frame.
    pub marker: bool,
    /// The codec payload (an Opus packet, a VP8 payload fragment).
    pub payload: Bytes,
}

/// A track the other side sends.
#[derive(Clone)]
pub struct RemoteTrack {
    kind: MediaKind,
    mime_type: Arc<str>,
    packets: Arc<Mutex<mpsc::Receiver<RtpPacket>>>,
}

impl std::fmt::Debug for RemoteTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTrack")
            .field("kind", &self.kind)
            .field("mime_type", &self.mime_type)
            .finish()
    }
}

impl RemoteTrack {
    /// Wraps a webrtc-rs remote track; a task reads its packets from now on.
    pub(crate) async fn new(track: Arc<dyn TrackRemote>) -> Self {
        let kind = match track.kind().await {
            RtpCodecKind::Audio => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let mut mime_type = String::new();
        for ssrc in track.ssrcs().await {
            if let Some(codec) = track.codec(ssrc).await {
                mime_type = codec.mime_type;
                break;
            }
        }
        let (tx, rx) = mpsc::channel(RTP_QUEUE);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        let packet = RtpPacket {
                            payload_type: p.header.payload_type,
                            sequence_number: p.header.sequence_number,
                            timestamp: p.header.timestamp,
                            ssrc: p.header.ssrc,
                            marker: p.header.marker,
                            payload: p.payload,
                        };
                        match tx.try_send(packet) {
                            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
        Self {
            kind,
            mime_type: mime_type.into(),
            packets: Arc::new(Mutex::new(rx)),
        }
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// The negotiated codec, e.g. `audio/opus` or `video/VP8`.
    pub fn mime_type(&self) -> &str {
        &self.mime_type
    }

    /// The next RTP packet; `None` once the track has ended.
    pub async fn recv(&self) -> Option<RtpPacket> {
        self.packets.lock().await.recv().await
    }
}

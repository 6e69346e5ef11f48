//! A call: the handle an app holds, with its state, events, media and data channels.

use std::sync::Arc;

use signaling_protocol::{CallId, EndReason, UserName};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, StatsSelector};

use crate::clock;
use crate::data::DataChannel;
use crate::error::{Error, Result};
use crate::lock;
use crate::media::{LocalTrack, RemoteTrack};
use crate::options::{ChannelSpec, Delivery, MediaKind};
use crate::stats::CallStats;

/// Which side of the call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This side called ([`Client::call`](crate::Client::call) or
    /// [`dial`](crate::Client::dial)): it sent the offer, and it restarts ICE.
    Caller,
    /// This side answered ([`IncomingCall::accept`](crate::IncomingCall::accept)).
    Callee,
}

/// Where a call is in its life.
#[derive(Debug, Clone)]
pub enum CallState {
    /// Invited; waiting for the callee.
    Dialing,
    /// Answered: media and data may flow.
    Active,
    /// Over, for this reason (`hangup` also when this side hung up).
    Ended(EndReason),
    /// The server refused the call (an `error`), or this side could not set it up.
    Failed(Error),
}

/// The state of the peer-to-peer connection (ICE + DTLS) of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not started yet: ICE has no candidates to check.
    New,
    /// ICE is checking candidate pairs, or DTLS is shaking hands.
    Connecting,
    /// A path works and DTLS is done: media and data flow.
    Connected,
    /// The path broke; the SDK restarts ICE if it does not come back.
    Disconnected,
    /// No path works (the caller's SDK restarts ICE at once).
    Failed,
    /// The call's peer connection is closed: the call ended.
    Closed,
}

impl ConnectionState {
    /// webrtc-rs's state, as the SDK shows it (a private conversion: a `From` impl would
    /// put a webrtc-rs type in the SDK's API).
    pub(crate) fn from_rtc(s: RTCPeerConnectionState) -> Self {
        match s {
            RTCPeerConnectionState::Connecting => Self::Connecting,
            RTCPeerConnectionState::Connected => Self::Connected,
            RTCPeerConnectionState::Disconnected => Self::Disconnected,
            RTCPeerConnectionState::Failed => Self::Failed,
            RTCPeerConnectionState::Closed => Self::Closed,
            _ => Self::New,
        }
    }
}

/// What happens in a call, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallEvent {
    /// The callee's devices ring.
    Ringing,
    /// The callee answered.
    Accepted,
    /// The peer connection changed state.
    Connection(ConnectionState),
    /// A renegotiation (a track added, an ICE restart) completed on this side.
    Renegotiated,
    /// The other side opened a data channel.
    DataChannel(DataChannel),
    /// The other side sends a media track.
    Track(RemoteTrack),
    /// Something went wrong that did not end the call.
    Error(Error),
    /// The call is over.
    Ended(EndReason),
}

pub(crate) enum Command {
    Hangup(oneshot::Sender<()>),
    Negotiate { ice_restart: bool },
    CheckIce,
}

pub(crate) struct CallShared {
    pub id: CallId,
    pub peer: UserName,
    pub role: Role,
    pub pc: Arc<dyn PeerConnection>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub state: watch::Receiver<CallState>,
    pub connection: watch::Receiver<ConnectionState>,
    pub events: Mutex<mpsc::UnboundedReceiver<CallEvent>>,
    pub channels: std::sync::Mutex<Vec<DataChannel>>,
    pub tracks: std::sync::Mutex<Vec<LocalTrack>>,
}

/// A call, outgoing or answered. Cheap to clone; dropping the last clone hangs up.
#[derive(Clone)]
pub struct Call {
    pub(crate) shared: Arc<CallShared>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .field("role", &self.shared.role)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl Call {
    /// The `call_id` on the wire.
    pub fn id(&self) -> &CallId {
        &self.shared.id
    }

    /// Who is on the other side.
    pub fn peer(&self) -> &UserName {
        &self.shared.peer
    }

    /// Caller or callee.
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// The state right now.
    pub fn state(&self) -> CallState {
        self.shared.state.borrow().clone()
    }

    /// Waits until the callee answers; fails with the reason if it never does
    /// ([`Error::CallEnded`] with `unavailable`, `busy`, `declined`, `timeout`, …).
    pub async fn answered(&self) -> Result<()> {
        let mut state = self.shared.state.clone();
        let settled = state
            .wait_for(|s| !matches!(s, CallState::Dialing))
            .await
            .map_err(|_| Error::Closed)?
            .clone();
        match settled {
            CallState::Active | CallState::Dialing => Ok(()),
            CallState::Ended(reason) => Err(Error::CallEnded(reason)),
            CallState::Failed(e) => Err(e),
        }
    }

    /// Waits until the peer-to-peer connection is up (ICE and DTLS done).
    pub async fn connected(&self) -> Result<()> {
        let mut connection = self.shared.connection.clone();
        let mut state = self.shared.state.clone();
        loop {
            if *connection.borrow_and_update() == ConnectionState::Connected {
                return Ok(());
            }
            match &*state.borrow_and_update() {
                CallState::Ended(reason) => return Err(Error::CallEnded(*reason)),
                CallState::Failed(e) => return Err(e.clone()),
                _ => {}
            }
            tokio::select! {
                changed = connection.changed() => changed.map_err(|_| Error::Closed)?,
                changed = state.changed() => changed.map_err(|_| Error::Closed)?,
            }
        }
    }

    /// Waits until the call is over and returns why.
    pub async fn ended(&self) -> EndReason {
        let mut state = self.shared.state.clone();
        let settled = state
            .wait_for(|s| matches!(s, CallState::Ended(_) | CallState::Failed(_)))
            .await
            .map(|s| s.clone());
        match settled {
            Ok(CallState::Ended(reason)) => reason,
            _ => EndReason::Hangup,
        }
    }

    /// The next event; `None` after [`CallEvent::Ended`].
    pub async fn next_event(&self) -> Option<CallEvent> {
        self.shared.events.lock().await.recv().await
    }

    /// The tracks this side sends.
    pub fn local_tracks(&self) -> Vec<LocalTrack> {
        lock(&self.shared.tracks).clone()
    }

    /// A data channel this side opened, by label.
    pub fn data_channel(&self, label: &str) -> Option<DataChannel> {
        lock(&self.shared.channels)
            .iter()
            .find(|c| c.label() == label)
            .cloned()
    }

    /// Adds a track mid-call; the SDK renegotiates (a `renegotiate` offer).
    pub async fn add_track(&self, kind: MediaKind) -> Result<LocalTrack> {
        let track = LocalTrack::add(&self.shared.pc, kind, self.shared.id.as_str()).await?;
        lock(&self.shared.tracks).push(track.clone());
        self.negotiate(false)?;
        Ok(track)
    }

    /// Opens a data channel mid-call (renegotiating if the call had none yet).
    pub async fn open_channel(&self, spec: ChannelSpec) -> Result<DataChannel> {
        let had_sctp = self.shared.pc.sctp().await.is_some();
        let channel = open_channel(&self.shared.pc, &spec).await?;
        lock(&self.shared.channels).push(channel.clone());
        if !had_sctp {
            self.negotiate(false)?;
        }
        Ok(channel)
    }

    /// Restarts ICE (new credentials, new candidates) through a `renegotiate` offer. The
    /// caller's SDK does it by itself when the path breaks; this is for apps that know
    /// the network changed.
    pub fn restart_ice(&self) -> Result<()> {
        self.negotiate(true)
    }

    fn negotiate(&self, ice_restart: bool) -> Result<()> {
        self.shared
            .commands
            .send(Command::Negotiate { ice_restart })
            .map_err(|_| Error::Closed)
    }

    /// Ends the call (cancels it while it rings). The other side gets `ended` `hangup`.
    pub async fn hangup(&self) {
        let (done, wait) = oneshot::channel();
        if self.shared.commands.send(Command::Hangup(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// The statistics of the call now: the selected candidate pair, RTT, bytes.
    pub async fn stats(&self) -> CallStats {
        let report = self
            .shared
            .pc
            .get_stats(clock::now(), StatsSelector::None)
            .await;
        CallStats::from_report(&report)
    }
}

/// Creates a data channel on `pc` as `spec` says.
pub(crate) async fn open_channel(
    pc: &Arc<dyn PeerConnection>,
    spec: &ChannelSpec,
) -> Result<DataChannel> {
    let init = match spec.delivery {
        Delivery::Reliable => rtc::data_channel::RTCDataChannelInit::default(),
        Delivery::Unreliable => rtc::data_channel::RTCDataChannelInit {
            ordered: false,
            max_retransmits: Some(0),
            ..Default::default()
        },
    };
    let channel = pc.create_data_channel(&spec.label, Some(init)).await?;
    Ok(DataChannel::new(channel).await)
}

//! The task behind each call: it applies what the server relays (answer, candidates,
//! renegotiation, end) to the peer connection, trickles local candidates, renegotiates
//! when asked, restarts ICE when the path breaks, and reports to the app.

use std::sync::Arc;
use std::time::Duration;

use signaling_protocol::{
    CallId, CallRef, Candidate, ClientMessage, EndReason, IceCandidate, Renegotiate, SdpType,
    ServerMessage, SessionDescription, UserName,
};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, warn};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCIceConnectionState, RTCSessionDescription,
};

use crate::call::{Call, CallEvent, CallShared, CallState, Command, ConnectionState, Role};
use crate::clock;
use crate::data::DataChannel;
use crate::error::{Error, Result};
use crate::media::{LocalTrack, RemoteTrack};
use crate::peer::{self, PeerEvent};
use crate::signaling::Signal;

/// How long a broken path may take to come back by itself before the caller restarts ICE.
const DISCONNECTED_GRACE: Duration = Duration::from_secs(2);

/// What a new call is made of, outgoing (after the invite) or answered (after accept).
pub(crate) struct CallSetup {
    pub id: CallId,
    pub peer: UserName,
    pub role: Role,
    pub signal: Signal,
    pub pc: Arc<dyn PeerConnection>,
    pub peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    pub route: mpsc::UnboundedReceiver<ServerMessage>,
    /// Messages of this call that arrived before the driver started.
    pub backlog: Vec<ServerMessage>,
    pub tracks: Vec<LocalTrack>,
    pub channels: Vec<DataChannel>,
}

/// Starts the call's driver task and returns the app's handle.
pub(crate) fn start(setup: CallSetup) -> Call {
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let initial = match setup.role {
        Role::Caller => CallState::Dialing,
        Role::Callee => CallState::Active,
    };
    let (state_tx, state) = watch::channel(initial);
    let (connection_tx, connection) = watch::channel(ConnectionState::New);
    let (events_tx, events) = mpsc::unbounded_channel();
    CallDriver {
        id: setup.id.clone(),
        role: setup.role,
        signal: setup.signal,
        pc: setup.pc.clone(),
        backlog: setup.backlog,
        route: setup.route,
        peer_events: setup.peer_events,
        commands,
        commands_tx: commands_tx.downgrade(),
        state: state_tx,
        connection: connection_tx,
        events: events_tx,
        // The callee set the offer before answering; the caller waits for `accepted`.
        remote_set: setup.role == Role::Callee,
        pending_candidates: Vec::new(),
        making_offer: false,
        offer_again: false,
        ice: RTCIceConnectionState::New,
    }
    .spawn();
    Call {
        shared: Arc::new(CallShared {
            id: setup.id,
            peer: setup.peer,
            role: setup.role,
            pc: setup.pc,
            commands: commands_tx,
            state,
            connection,
            events: tokio::sync::Mutex::new(events),
            channels: std::sync::Mutex::new(setup.channels),
            tracks: std::sync::Mutex::new(setup.tracks),
        }),
    }
}

struct CallDriver {
    id: CallId,
    role: Role,
    signal: Signal,
    pc: Arc<dyn PeerConnection>,
    backlog: Vec<ServerMessage>,
    route: mpsc::UnboundedReceiver<ServerMessage>,
    peer_events: mpsc::UnboundedReceiver<PeerEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_tx: mpsc::WeakUnboundedSender<Command>,
    state: watch::Sender<CallState>,
    connection: watch::Sender<ConnectionState>,
    events: mpsc::UnboundedSender<CallEvent>,
    remote_set: bool,
    pending_candidates: Vec<RTCIceCandidateInit>,
    making_offer: bool,
    offer_again: bool,
    ice: RTCIceConnectionState,
}

/// How one step of the driver went.
enum Step {
    Go,
    End(EndReason),
}

impl CallDriver {
    fn spawn(self) {
        let span = tracing::info_span!("call", call_id = %self.id, role = ?self.role);
        tokio::spawn(self.run().instrument(span));
    }

    async fn run(mut self) {
        let mut step = Step::Go;
        for msg in std::mem::take(&mut self.backlog) {
            step = self.on_signal(msg).await;
            if let Step::End(_) = step {
                break;
            }
        }
        while let Step::Go = step {
            step = tokio::select! {
                msg = self.route.recv() => match msg {
                    Some(msg) => self.on_signal(msg).await,
                    None => Step::End(EndReason::PeerLost),
                },
                event = self.peer_events.recv() => match event {
                    Some(event) => self.on_peer(event).await,
                    None => Step::Go,
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => {
                        // Every handle was dropped: hang up.
                        self.send(ClientMessage::Hangup(CallRef { call_id: self.id.clone() }));
                        Step::End(EndReason::Hangup)
                    }
                },
            };
        }
        if let Step::End(reason) = step {
            self.end(reason).await;
        }
    }

    async fn end(&mut self, reason: EndReason) {
        info!(%reason, "call ended");
        self.signal.unroute(&self.id);
        let _ = self.pc.close().await;
        let already_failed = matches!(*self.state.borrow(), CallState::Failed(_));
        if !already_failed {
            let _ = self.state.send(CallState::Ended(reason));
        }
        let _ = self.connection.send(ConnectionState::Closed);
        let _ = self.events.send(CallEvent::Ended(reason));
        // Commands that raced with the end (a hangup) are answered by dropping them.
        while let Ok(command) = self.commands.try_recv() {
            drop(command);
        }
    }

    fn send(&self, msg: ClientMessage) {
        if self.signal.send(msg).is_err() {
            debug!("signaling closed; message dropped");
        }
    }

    fn fail(&mut self, error: Error) -> Step {
        warn!(error = &error as &dyn std::error::Error, "call failed");
        let _ = self.events.send(CallEvent::Error(error.clone()));
        let _ = self.state.send(CallState::Failed(error));
        Step::End(EndReason::Hangup)
    }

    async fn on_signal(&mut self, msg: ServerMessage) -> Step {
        match msg {
            ServerMessage::Ringing(_) => {
                let _ = self.events.send(CallEvent::Ringing);
                Step::Go
            }
            ServerMessage::Accepted(m) => self.on_accepted(m.answer).await,
            ServerMessage::Candidate(m) => {
                match m.candidate {
                    Some(c) => self.on_remote_candidate(c).await,
                    None => debug!("remote end of candidates"),
                }
                Step::Go
            }
            ServerMessage::Renegotiate(m) => {
                if let Err(error) = self.on_description(m.description).await {
                    let _ = self.events.send(CallEvent::Error(error));
                }
                Step::Go
            }
            ServerMessage::Ended(m) => Step::End(m.reason),
            ServerMessage::Error(e) => {
                let error = Error::Server {
                    code: e.code,
                    message: e.message,
                };
                if matches!(*self.state.borrow(), CallState::Dialing) {
                    self.fail(error)
                } else {
                    let _ = self.events.send(CallEvent::Error(error));
                    Step::Go
                }
            }
            ServerMessage::Invite(_) | ServerMessage::Welcome(_) | ServerMessage::Pong => Step::Go,
        }
    }

    async fn on_accepted(&mut self, answer: String) -> Step {
        if self.role != Role::Caller || !matches!(*self.state.borrow(), CallState::Dialing) {
            debug!("unexpected accepted, ignored");
            return Step::Go;
        }
        let applied = match RTCSessionDescription::answer(answer) {
            Ok(desc) => self
                .pc
                .set_remote_description(desc)
                .await
                .map_err(Error::from),
            Err(e) => Err(Error::from(e)),
        };
        if let Err(error) = applied {
            self.send(ClientMessage::Hangup(CallRef {
                call_id: self.id.clone(),
            }));
            return self.fail(error);
        }
        self.remote_set = true;
        self.add_pending_candidates().await;
        let _ = self.state.send(CallState::Active);
        let _ = self.events.send(CallEvent::Accepted);
        Step::Go
    }

    async fn on_remote_candidate(&mut self, c: IceCandidate) {
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        if self.remote_set {
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                debug!(error = %e, "remote candidate refused");
            }
        } else {
            self.pending_candidates.push(init);
        }
    }

    async fn add_pending_candidates(&mut self) {
        for init in std::mem::take(&mut self.pending_candidates) {
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                debug!(error = %e, "remote candidate refused");
            }
        }
    }

    /// A `renegotiate` from the other side: an offer to answer, or the answer to ours.
    async fn on_description(&mut self, desc: SessionDescription) -> Result<()> {
        if !matches!(*self.state.borrow(), CallState::Active) {
            return Ok(());
        }
        match desc.kind {
            SdpType::Offer => {
                if self.making_offer {
                    if self.role == Role::Caller {
                        // Both offered at once: the caller's offer wins, the callee rolls back.
                        debug!("offer glare: keeping ours");
                        return Ok(());
                    }
                    self.pc
                        .set_local_description(RTCSessionDescription::rollback(None)?)
                        .await?;
                    self.making_offer = false;
                    self.offer_again = true;
                }
                self.pc
                    .set_remote_description(RTCSessionDescription::offer(desc.sdp)?)
                    .await?;
                self.remote_set = true;
                self.add_pending_candidates().await;
                let answer = self.pc.create_answer(None).await?;
                self.pc.set_local_description(answer.clone()).await?;
                self.send(ClientMessage::Renegotiate(Renegotiate {
                    call_id: self.id.clone(),
                    description: SessionDescription {
                        kind: SdpType::Answer,
                        sdp: answer.sdp,
                    },
                }));
                let _ = self.events.send(CallEvent::Renegotiated);
                if std::mem::take(&mut self.offer_again) {
                    self.offer(false).await?;
                }
            }
            SdpType::Answer => {
                if !self.making_offer {
                    debug!("answer without an offer, ignored");
                    return Ok(());
                }
                self.pc
                    .set_remote_description(RTCSessionDescription::answer(desc.sdp)?)
                    .await?;
                self.making_offer = false;
                let _ = self.events.send(CallEvent::Renegotiated);
                if std::mem::take(&mut self.offer_again) {
                    self.offer(false).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends a `renegotiate` offer (after an ICE restart if asked).
    async fn offer(&mut self, ice_restart: bool) -> Result<()> {
        if !matches!(*self.state.borrow(), CallState::Active) {
            return Ok(());
        }
        if self.making_offer {
            self.offer_again = true;
            return Ok(());
        }
        if ice_restart {
            self.pc.restart_ice().await?;
        }
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer.clone()).await?;
        self.making_offer = true;
        self.send(ClientMessage::Renegotiate(Renegotiate {
            call_id: self.id.clone(),
            description: SessionDescription {
                kind: SdpType::Offer,
                sdp: offer.sdp,
            },
        }));
        Ok(())
    }

    async fn on_command(&mut self, command: Command) -> Step {
        match command {
            Command::Hangup(done) => {
                self.send(ClientMessage::Hangup(CallRef {
                    call_id: self.id.clone(),
                }));
                let _ = done.send(());
                Step::End(EndReason::Hangup)
            }
            Command::Negotiate { ice_restart } => {
                if let Err(error) = self.offer(ice_restart).await {
                    let _ = self.events.send(CallEvent::Error(error));
                }
                Step::Go
            }
            Command::CheckIce => {
                if matches!(
                    self.ice,
                    RTCIceConnectionState::Disconnected | RTCIceConnectionState::Failed
                ) {
                    info!("path still broken: restarting ICE");
                    if let Err(error) = self.offer(true).await {
                        let _ = self.events.send(CallEvent::Error(error));
                    }
                }
                Step::Go
            }
        }
    }

    async fn on_peer(&mut self, event: PeerEvent) -> Step {
        match event {
            PeerEvent::Candidate(init) => {
                let candidate = match init {
                    Some(init) => {
                        let local = self.pc.local_description().await;
                        let init = peer::fill_mid(init, local.as_ref().map(|d| d.sdp.as_str()));
                        Some(IceCandidate {
                            candidate: init.candidate,
                            sdp_mid: init.sdp_mid,
                            sdp_m_line_index: init.sdp_mline_index,
                            username_fragment: init.username_fragment,
                        })
                    }
                    None => None,
                };
                self.send(ClientMessage::Candidate(Candidate {
                    call_id: self.id.clone(),
                    candidate,
                }));
            }
            PeerEvent::Ice(state) => {
                debug!(?state, "ice");
                self.ice = state;
                self.on_ice(state);
            }
            PeerEvent::State(state) => {
                let state = ConnectionState::from_rtc(state);
                let _ = self.connection.send(state);
                let _ = self.events.send(CallEvent::Connection(state));
            }
            PeerEvent::DataChannel(channel) => {
                let channel = DataChannel::new(channel).await;
                let _ = self.events.send(CallEvent::DataChannel(channel));
            }
            PeerEvent::Track(track) => {
                let track = RemoteTrack::new(track).await;
                let _ = self.events.send(CallEvent::Track(track));
            }
        }
        Step::Go
    }

    /// The caller restarts ICE when the path fails, or stays broken for a moment.
    fn on_ice(&mut self, state: RTCIceConnectionState) {
        if self.role != Role::Caller {
            return;
        }
        let delay = match state {
            RTCIceConnectionState::Failed => Duration::ZERO,
            RTCIceConnectionState::Disconnected => DISCONNECTED_GRACE,
            _ => return,
        };
        let commands = self.commands_tx.clone();
        tokio::spawn(async move {
            clock::sleep(delay).await;
            if let Some(commands) = commands.upgrade() {
                let _ = commands.send(Command::CheckIce);
            }
        });
    }
}

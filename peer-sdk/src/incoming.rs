//! A call that rings here: answer it, refuse it, or learn that it stopped ringing.

use serde_json::Value;
use signaling_protocol::{
    Accept, CallId, ClientMessage, EndReason, IncomingInvite, Reject, RejectReason, ServerMessage,
    UserName,
};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCSessionDescription;

use crate::call::{Call, Role};
use crate::call_driver::{self, CallSetup};
use crate::error::{Error, Result};
use crate::media::LocalTrack;
use crate::options::{AcceptOptions, PeerOptions};
use crate::peer;
use crate::signaling::Signal;

/// An invitation to a call. Answer with [`accept`](Self::accept) or
/// [`reject`](Self::reject); if you do neither the caller's ring timeout ends it.
#[derive(Debug)]
pub struct IncomingCall {
    invite: IncomingInvite,
    route: mpsc::UnboundedReceiver<ServerMessage>,
    backlog: Vec<ServerMessage>,
    ended: Option<EndReason>,
    signal: Signal,
    peer: PeerOptions,
}

impl IncomingCall {
    pub(crate) fn new(
        invite: IncomingInvite,
        route: mpsc::UnboundedReceiver<ServerMessage>,
        signal: Signal,
        peer: PeerOptions,
    ) -> Self {
        Self {
            invite,
            route,
            backlog: Vec::new(),
            ended: None,
            signal,
            peer,
        }
    }

    /// The `call_id` on the wire.
    pub fn id(&self) -> &CallId {
        &self.invite.call_id
    }

    /// Who calls, as the server authenticated them.
    pub fn from(&self) -> &UserName {
        &self.invite.from
    }

    /// What the caller attached to the invite (`null` if nothing).
    pub fn meta(&self) -> Option<&Value> {
        self.invite.meta.as_ref()
    }

    /// Takes what the server already sent about this call, without waiting.
    fn drain(&mut self) {
        while self.ended.is_none() {
            match self.route.try_recv() {
                Ok(ServerMessage::Ended(m)) => self.ended = Some(m.reason),
                Ok(other) => self.backlog.push(other),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.ended = Some(EndReason::PeerLost)
                }
            }
        }
    }

    /// Waits until the call stops ringing here without being answered: the caller
    /// cancelled (`hangup`), another device answered (`answered_elsewhere`) or refused
    /// (`rejected_elsewhere`), the ring timed out (`timeout`).
    pub async fn stopped_ringing(&mut self) -> EndReason {
        loop {
            if let Some(reason) = self.ended {
                return reason;
            }
            match self.route.recv().await {
                Some(ServerMessage::Ended(m)) => self.ended = Some(m.reason),
                Some(other) => self.backlog.push(other),
                None => self.ended = Some(EndReason::PeerLost),
            }
        }
    }

    /// Refuses the call; the caller gets `ended` with `reason`.
    pub fn reject(mut self, reason: RejectReason) -> Result<()> {
        self.drain();
        if let Some(reason) = self.ended {
            return Err(Error::CallEnded(reason));
        }
        self.signal.unroute(&self.invite.call_id);
        self.signal.send(ClientMessage::Reject(Reject {
            call_id: self.invite.call_id.clone(),
            reason,
        }))
    }

    /// Answers: sets up the peer connection with the offer and sends the answer.
    pub async fn accept(mut self, options: AcceptOptions) -> Result<Call> {
        self.drain();
        if let Some(reason) = self.ended {
            return Err(Error::CallEnded(reason));
        }
        let peer_options = options.peer.clone().unwrap_or_else(|| self.peer.clone());
        let peer = peer::build(self.signal.ice_servers(), self.signal.tls(), &peer_options).await?;
        let pc = peer.pc.clone();
        let setup = async {
            pc.set_remote_description(RTCSessionDescription::offer(self.invite.offer.clone())?)
                .await?;
            let mut tracks = Vec::new();
            for kind in &options.tracks {
                tracks.push(LocalTrack::add(&pc, *kind, self.invite.call_id.as_str()).await?);
            }
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer.clone()).await?;
            Ok::<_, Error>((tracks, answer))
        };
        let (tracks, answer) = match setup.await {
            Ok(done) => done,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        self.signal.send(ClientMessage::Accept(Accept {
            call_id: self.invite.call_id.clone(),
            answer: answer.sdp,
        }))?;

        Ok(call_driver::start(CallSetup {
            id: self.invite.call_id,
            peer: self.invite.from,
            role: Role::Callee,
            signal: self.signal.clone(),
            pc,
            peer_events: peer.events,
            route: self.route,
            backlog: std::mem::take(&mut self.backlog),
            tracks,
            channels: Vec::new(),
        }))
    }
}

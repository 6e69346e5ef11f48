//! The client: one signaling session, from which calls are made and received.

use std::sync::Arc;

use signaling_protocol::{ClientMessage, Invite, MAX_META_BYTES, UserName};
use tokio::sync::{Mutex, mpsc, watch};

use crate::call::{Call, Role, open_channel};
use crate::call_driver::{self, CallSetup};
use crate::clock;
use crate::error::{Argument, Error, Result};
use crate::incoming::IncomingCall;
use crate::media::LocalTrack;
use crate::options::{CallOptions, ClientOptions};
use crate::peer;
use crate::signaling::{self, Notice, Signal};

/// What happens to the session, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Someone calls.
    Incoming(Box<IncomingCall>),
    /// The signaling socket dropped; the SDK is reconnecting (calls go on meanwhile).
    Reconnecting {
        /// 1 for the first attempt after the drop, then 2, 3, … until it succeeds.
        attempt: u32,
        /// Why the socket dropped, or why the previous attempt failed.
        error: Error,
    },
    /// Back online.
    Reconnected {
        /// `true`: the server re-attached the session and nothing was lost. `false`: the
        /// session had expired and its calls ended (with `peer_lost`).
        resumed: bool,
    },
    /// The server reported an error that concerns no call.
    Error(Error),
    /// The session is over (closed by the app, or refused by the server on reconnect).
    Closed(Error),
}

struct ClientInner {
    signal: Signal,
    options: ClientOptions,
    notices: Mutex<mpsc::UnboundedReceiver<Notice>>,
    close: watch::Sender<bool>,
    /// The signaling task, awaited by `close`.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        let _ = self.close.send(true);
    }
}

/// A signed-in client. Cheap to clone; dropping the last clone signs off.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("user", self.inner.signal.user())
            .finish()
    }
}

impl Client {
    /// Connects to the signaling server at `url` (`ws://host:port/ws`, or
    /// `wss://host[:port]/ws` over TLS) as `user`, with a JWT `token` if the server requires
    /// one. Returns once the server said `welcome`.
    pub async fn connect(url: &str, user: &str, token: Option<&str>) -> Result<Client> {
        Self::connect_with(url, user, token, ClientOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    pub async fn connect_with(
        url: &str,
        user: &str,
        token: Option<&str>,
        options: ClientOptions,
    ) -> Result<Client> {
        let user = UserName::new(user).map_err(|e| Error::invalid(Argument::User, e))?;
        let (signal, notices, close, task) =
            signaling::start(url.to_owned(), user, token.map(str::to_owned), &options).await?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                signal,
                options,
                notices: Mutex::new(notices),
                close,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Who this client is signed in as.
    pub fn user(&self) -> &UserName {
        self.inner.signal.user()
    }

    /// The next event: incoming calls, reconnects, errors. `None` once closed.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        let notice = self.inner.notices.lock().await.recv().await?;
        Some(match notice {
            Notice::Invite(invite, route) => ClientEvent::Incoming(Box::new(IncomingCall::new(
                invite,
                route,
                self.inner.signal.clone(),
                self.inner.options.peer.clone(),
            ))),
            Notice::Reconnecting { attempt, error } => ClientEvent::Reconnecting { attempt, error },
            Notice::Reconnected { resumed } => ClientEvent::Reconnected { resumed },
            Notice::Error(e) => ClientEvent::Error(e),
            Notice::Closed(e) => ClientEvent::Closed(e),
        })
    }

    /// Calls `to` and waits until the call is answered; fails with the reason if not
    /// ([`Error::CallEnded`] with `unavailable`, `busy`, `declined`, `timeout`, …).
    pub async fn call(&self, to: &str, options: CallOptions) -> Result<Call> {
        let call = self.dial(to, options).await?;
        call.answered().await?;
        Ok(call)
    }

    /// Invites `to` and returns at once with a call in [`CallState::Dialing`](crate::CallState::Dialing): wait with
    /// [`Call::answered`], cancel with [`Call::hangup`].
    pub async fn dial(&self, to: &str, options: CallOptions) -> Result<Call> {
        let to = UserName::new(to).map_err(|e| Error::invalid(Argument::Callee, e))?;
        if options.tracks.is_empty() && options.channels.is_empty() {
            return Err(Error::invalid(
                Argument::CallOptions,
                "a call needs at least one track or data channel",
            ));
        }
        if let Some(meta) = &options.meta {
            let size = serde_json::to_string(meta)
                .map(|s| s.len())
                .unwrap_or(usize::MAX);
            if size > MAX_META_BYTES {
                return Err(Error::invalid(
                    Argument::Meta,
                    format!("it is {size} bytes, at most {MAX_META_BYTES}"),
                ));
            }
        }
        let call_id = clock::call_id();
        let peer_options = options
            .peer
            .clone()
            .unwrap_or_else(|| self.inner.options.peer.clone());
        let peer = peer::build(
            self.inner.signal.ice_servers(),
            self.inner.signal.tls(),
            &peer_options,
        )
        .await?;
        let pc = peer.pc.clone();
        let setup = async {
            let mut tracks = Vec::new();
            for kind in &options.tracks {
                tracks.push(LocalTrack::add(&pc, *kind, call_id.as_str()).await?);
            }
            let mut channels = Vec::new();
            for spec in &options.channels {
                channels.push(open_channel(&pc, spec).await?);
            }
            let offer = pc.create_offer(None).await?;
            pc.set_local_description(offer.clone()).await?;
            Ok::<_, Error>((tracks, channels, offer))
        };
        let (tracks, channels, offer) = match setup.await {
            Ok(done) => done,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };

        let route = self.inner.signal.route(call_id.clone());
        self.inner.signal.send(ClientMessage::Invite(Invite {
            call_id: call_id.clone(),
            to: to.clone(),
            offer: offer.sdp,
            meta: options.meta.clone(),
        }))?;

        Ok(call_driver::start(CallSetup {
            id: call_id,
            peer: to,
            role: Role::Caller,
            signal: self.inner.signal.clone(),
            pc,
            peer_events: peer.events,
            route,
            backlog: Vec::new(),
            tracks,
            channels,
        }))
    }

    /// Signs off: the socket closes normally, the server ends the session and its calls.
    /// Returns once what was sent before (a `hangup`, say) and the close frame are written
    /// and the server has answered the close, or after [`ClientOptions::connect_timeout`]
    /// at most, so a program may exit right after.
    pub async fn close(&self) {
        let _ = self.inner.close.send(true);
        let task = self.inner.task.lock().await.take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(self.inner.options.connect_timeout, task).await;
        }
    }
}

//! Data channels: send with back-pressure, receive in order, know when one is open.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{Mutex, mpsc, watch};
use webrtc::data_channel::{DataChannel as RtcDataChannel, DataChannelEvent};

use crate::error::{Error, Result};

/// How many received messages wait for `recv` before the SDK stops reading the channel
/// (which then applies SCTP flow control to the sender).
const RECV_QUEUE: usize = 256;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Sent with `send_text` (a string) rather than `send` (bytes).
    pub is_text: bool,
    /// The message as sent: UTF-8 if `is_text` (see [`text`](Self::text)).
    pub data: Bytes,
}

impl DataMessage {
    /// The message as text, if it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Created; SCTP is not up yet or the other side has not acknowledged the channel.
    Connecting,
    /// Messages can be sent and received.
    Open,
    /// Closed by either side, or the call ended.
    Closed,
}

/// A data channel of a call. Cheap to clone; every clone is the same channel.
#[derive(Clone)]
pub struct DataChannel {
    inner: Arc<dyn RtcDataChannel>,
    label: Arc<str>,
    state: watch::Receiver<ChannelState>,
    messages: Arc<Mutex<mpsc::Receiver<DataMessage>>>,
}

impl std::fmt::Debug for DataChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataChannel")
            .field("label", &self.label)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl DataChannel {
    /// Wraps a webrtc-rs channel; a task reads its events from now on.
    pub(crate) async fn new(inner: Arc<dyn RtcDataChannel>) -> Self {
        let label: Arc<str> = inner.label().await.unwrap_or_default().into();
        let (state_tx, state) = watch::channel(ChannelState::Connecting);
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        let channel = inner.clone();
        tokio::spawn(async move {
            while let Some(event) = channel.poll().await {
                match event {
                    DataChannelEvent::OnOpen => {
                        let _ = state_tx.send(ChannelState::Open);
                    }
                    DataChannelEvent::OnMessage(m) => {
                        let msg = DataMessage {
                            is_text: m.is_string,
                            data: m.data.freeze(),
                        };
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
            let _ = state_tx.send(ChannelState::Closed);
        });
        Self {
            inner,
            label,
            state,
            messages: Arc::new(Mutex::new(rx)),
        }
    }

    /// The label both sides gave the channel.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Connecting, open or closed.
    pub fn state(&self) -> ChannelState {
        *self.state.borrow()
    }

    /// Waits until the channel is open; fails if it closes first.
    pub async fn opened(&self) -> Result<()> {
        let mut state = self.state.clone();
        let reached = state
            .wait_for(|s| *s != ChannelState::Connecting)
            .await
            .map_err(|_| Error::Closed)?;
        match *reached {
            ChannelState::Open => Ok(()),
            _ => Err(Error::Closed),
        }
    }

    /// Sends bytes. Waits while the channel has more than the configured send buffer
    /// outstanding ([`PeerOptions::data_channel_send_buffer`](crate::PeerOptions)), so a
    /// fast sender cannot fill memory.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<()> {
        let data: Bytes = data.into();
        self.inner.send(BytesMut::from(&data[..])).await?;
        Ok(())
    }

    /// Sends a text message (a string on the other side, also in a browser).
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.inner.send_text(text).await?;
        Ok(())
    }

    /// The next message; `None` once the channel is closed and drained.
    pub async fn recv(&self) -> Option<DataMessage> {
        self.messages.lock().await.recv().await
    }

    /// Bytes handed to `send` that the other side has not acknowledged yet.
    pub async fn buffered_amount(&self) -> usize {
        self.inner.outstanding_bytes().await.unwrap_or(0)
    }

    /// Closes the channel on both sides.
    pub async fn close(&self) -> Result<()> {
        self.inner.close().await?;
        Ok(())
    }
}

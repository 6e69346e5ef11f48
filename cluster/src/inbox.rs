//! This node's inbox: the stream `{prefix}inbox:{node}`, read by a background task over a
//! connection of its own (a blocking XREAD on the shared connection would stall every
//! other command) and handed over through a bounded channel.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::cluster::Inner;
use crate::connection::COMMAND_TIMEOUT;
use crate::{ClusterError, NodeId, clock};

/// How long one XREAD blocks waiting for messages.
const BLOCK: Duration = Duration::from_millis(1000);
/// Entries per XREAD.
const COUNT: usize = 512;
/// Envelopes buffered between the reader and `Inbox::recv`; when full the reader waits
/// and the rest stays in Redis.
const CHANNEL_CAPACITY: usize = 1024;

/// A message from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: NodeId,
    pub payload: Vec<u8>,
}

/// What other nodes sent to this node, in order per sender.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Envelope>,
}

impl Inbox {
    /// The next message; `None` once the node has left (or its last handle was dropped).
    pub async fn recv(&mut self) -> Option<Envelope> {
        self.rx.recv().await
    }
}

/// A stream entry id, `{ms}-{seq}`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamPos {
    ms: u64,
    seq: u64,
}

impl StreamPos {
    fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for StreamPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The reader's connection settings: a response timeout that outlasts the block.
pub(crate) fn connection_config(connect_timeout: Duration) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(BLOCK + COMMAND_TIMEOUT))
}

/// The id of the newest entry in this node's inbox (`0-0` if there is none).
pub(crate) async fn last_id(inner: &Inner) -> Result<StreamPos, ClusterError> {
    let cmd = newest_cmd(&inner.keys.inbox(&inner.node));
    let reply: StreamRange = inner.conn.query("XREVRANGE", &cmd).await?;
    Ok(newest(reply))
}

type StreamRange = Vec<(String, Vec<(String, Value)>)>;

fn newest_cmd(key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(key).arg("+").arg("-").arg("COUNT").arg(1);
    cmd
}

fn newest(reply: StreamRange) -> StreamPos {
    reply
        .first()
        .and_then(|(id, _)| StreamPos::parse(id))
        .unwrap_or_default()
}

/// Starts the reader after `start`; returns the `Inbox` and the task's handle.
pub(crate) fn start(
    inner: Arc<Inner>,
    client: redis::Client,
    conn: MultiplexedConnection,
    start: StreamPos,
    connect_timeout: Duration,
) -> (Inbox, AbortHandle) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let key = inner.keys.inbox(&inner.node);
    let reader = Reader {
        inner,
        client,
        conn: Some(conn),
        key,
        last: start,
        tx,
        connect_timeout,
        unreclaimed: 0,
    };
    let span = tracing::info_span!("cluster", node = %reader.inner.node, task = "inbox");
    let handle = tokio::spawn(reader.run().instrument(span)).abort_handle();
    (Inbox { rx }, handle)
}

/// The reader task's state: `last` survives reconnects, so nothing is read twice.
struct Reader {
    inner: Arc<Inner>,
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    key: String,
    last: StreamPos,
    tx: mpsc::Sender<Envelope>,
    connect_timeout: Duration,
    /// Entries read since the stream was last trimmed of what was read.
    unreclaimed: usize,
}

/// Entries read after which the stream is trimmed of them (also whenever a read finds
/// nothing new): read entries are never needed again, and left alone each inbox would
/// hold up to its `MAXLEN` in Redis's memory.
const TRIM_EVERY: usize = 1024;

impl Reader {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            match self.step().await {
                Ok(true) => backoff.reset(),
                Ok(false) => return,
                Err(err) => {
                    self.inner.conn.record(Some(&err), None);
                    self.conn = None;
                    clock::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// One read (after reconnecting if needed). Ok(false): the `Inbox` is gone.
    async fn step(&mut self) -> Result<bool, ClusterError> {
        let mut conn = match self.conn.clone() {
            Some(conn) => conn,
            None => self.reconnect().await?,
        };
        let entries = self.read(&mut conn).await?;
        if entries.is_empty() {
            self.check_rewound(&mut conn).await?;
            self.trim(&mut conn).await;
            return Ok(true);
        }
        self.unreclaimed += entries.len();
        if self.unreclaimed >= TRIM_EVERY {
            self.trim(&mut conn).await;
        }
        for entry in entries {
            let Some(pos) = StreamPos::parse(&entry.id) else {
                continue;
            };
            self.last = pos;
            if let Some(envelope) = envelope(entry) {
                self.inner.conn.metrics().received();
                tracing::debug!(from = %envelope.from, id = %pos, len = envelope.payload.len(), "received");
                if self.tx.send(envelope).await.is_err() {
                    tracing::info!("inbox dropped; stopping the reader");
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Deletes the entries up to the last one read (`XTRIM MINID`: those with a lower id;
    /// the last one stays as the stream's newest, which `check_rewound` compares with).
    async fn trim(&mut self, conn: &mut MultiplexedConnection) {
        if self.unreclaimed == 0 {
            return;
        }
        let mut cmd = redis::cmd("XTRIM");
        cmd.arg(&self.key).arg("MINID").arg(self.last.to_string());
        let trimmed: Result<u64, _> = timed("XTRIM", COMMAND_TIMEOUT, cmd.query_async(conn)).await;
        match trimmed {
            Ok(n) => {
                self.unreclaimed = 0;
                tracing::debug!(trimmed = n, "inbox trimmed of what was read");
            }
            Err(err) => tracing::debug!(error = %err, "inbox not trimmed; later"),
        }
    }

    /// A new dedicated connection; then a check that the stream did not go backwards.
    async fn reconnect(&mut self) -> Result<MultiplexedConnection, ClusterError> {
        let config = connection_config(self.connect_timeout);
        let connecting = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let mut conn = timed("CONNECT", self.connect_timeout, connecting).await?;
        self.check_rewound(&mut conn).await?;
        self.inner.conn.record(None, None);
        tracing::info!(last = %self.last, "inbox reader reconnected");
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    async fn read(&self, conn: &mut MultiplexedConnection) -> Result<Vec<StreamId>, ClusterError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64);
        cmd.arg("STREAMS").arg(&self.key).arg(self.last.to_string());
        let reply: Option<StreamReadReply> =
            timed("XREAD", BLOCK + COMMAND_TIMEOUT, cmd.query_async(conn)).await?;
        self.inner.conn.record(None, None);
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect())
    }

    /// If the stream's newest entry is older than the last one read (Redis restarted
    /// empty, or the stream was deleted), reads the new stream from its start.
    async fn check_rewound(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), ClusterError> {
        let reply: StreamRange = timed(
            "XREVRANGE",
            COMMAND_TIMEOUT,
            newest_cmd(&self.key).query_async(conn),
        )
        .await?;
        let newest = newest(reply);
        if newest < self.last {
            tracing::warn!(last = %self.last, %newest, "inbox stream went backwards; reading it from the start");
            self.last = StreamPos::default();
        }
        Ok(())
    }
}

/// A stream entry as an `Envelope`; `None` (and a warning) if it lacks `from` or `d`.
fn envelope(entry: StreamId) -> Option<Envelope> {
    let from = match entry.map.get("from") {
        Some(Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| NodeId::new(s).ok()),
        _ => None,
    };
    let payload = match entry.map.get("d") {
        Some(Value::BulkString(b)) => Some(b.clone()),
        _ => None,
    };
    match (from, payload) {
        (Some(from), Some(payload)) => Some(Envelope { from, payload }),
        _ => {
            tracing::warn!(id = %entry.id, "ignoring a malformed inbox entry");
            None
        }
    }
}

/// `fut` bounded by `after`, its errors as `ClusterError`.
async fn timed<T>(
    command: &'static str,
    after: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result.map_err(|source| ClusterError::Redis { command, source }),
        Err(_) => Err(ClusterError::Timeout { command, after }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_numerically() {
        let a = StreamPos::parse("999-5").unwrap();
        let b = StreamPos::parse("1000-0").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1000-0");
        assert!(StreamPos::default() < a);
        assert!(StreamPos::parse("x").is_none());
    }
}

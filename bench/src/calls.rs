//! Call setup rate and relay latency over M concurrent calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::SplitSink;
use signaling_protocol::{
    Accept, CallId, Candidate, ClientMessage, IceCandidate, Invite, ServerMessage, UserName,
};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use bench_support::BenchError;

pub struct Pair {
    caller: Ws,
    callee: Ws,
    call_id: CallId,
}

pub struct SetupResult {
    pub pairs: Vec<Pair>,
    pub latencies_us: Vec<u64>,
    pub wall: Duration,
}

/// Connects `m` caller/callee pairs (source addresses from `first_index` on).
pub async fn connect(
    server: SocketAddr,
    m: usize,
    first_index: usize,
) -> Result<Vec<(Ws, Ws, usize)>, BenchError> {
    connect_across(vec![(server, server); m], first_index, "").await
}

/// Connects one caller/callee pair per entry of `servers`, the caller to the entry's first
/// server and the callee to its second (source addresses from `first_index` on); users are
/// named `{tag}caller{i}` and `{tag}callee{i}`.
pub async fn connect_across(
    servers: Vec<(SocketAddr, SocketAddr)>,
    first_index: usize,
    tag: &str,
) -> Result<Vec<(Ws, Ws, usize)>, BenchError> {
    let m = servers.len();
    let mut set = JoinSet::new();
    for (i, (caller_server, callee_server)) in servers.into_iter().enumerate() {
        let tag = tag.to_owned();
        set.spawn(async move {
            let caller = client::join(
                caller_server,
                client::source_for(first_index + 2 * i),
                &format!("{tag}caller{i}"),
            )
            .await?;
            let callee = client::join(
                callee_server,
                client::source_for(first_index + 2 * i + 1),
                &format!("{tag}callee{i}"),
            )
            .await?;
            Ok::<_, BenchError>((caller, callee, i))
        });
    }
    let mut out = Vec::with_capacity(m);
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    Ok(out)
}

/// Every caller invites its callee at once; the callee accepts on receipt.
pub async fn set_up(conns: Vec<(Ws, Ws, usize)>) -> Result<SetupResult, BenchError> {
    set_up_tagged(conns, "").await
}

/// [`set_up`] for users named `{tag}caller{i}` / `{tag}callee{i}` ([`connect_across`]).
pub async fn set_up_tagged(
    conns: Vec<(Ws, Ws, usize)>,
    tag: &str,
) -> Result<SetupResult, BenchError> {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for (mut caller, mut callee, i) in conns {
        let tag = tag.to_owned();
        set.spawn(async move {
            let call_id = CallId::new(format!("{tag}call{i}"))
                .map_err(|e| BenchError::Protocol(e.to_string()))?;
            let to = UserName::new(format!("{tag}callee{i}"))
                .map_err(|e| BenchError::Protocol(e.to_string()))?;
            let sent = Instant::now();
            let invite = Invite {
                call_id: call_id.clone(),
                to,
                offer: "v=0 bench offer".into(),
                meta: None,
            };
            client::send(&mut caller, &ClientMessage::Invite(invite)).await?;
            match client::recv(&mut callee).await? {
                ServerMessage::Invite(_) => {}
                other => return Err(BenchError::Protocol(format!("callee got {other:?}"))),
            }
            let accept = Accept {
                call_id: call_id.clone(),
                answer: "v=0 bench answer".into(),
            };
            client::send(&mut callee, &ClientMessage::Accept(accept)).await?;
            loop {
                match client::recv(&mut caller).await? {
                    ServerMessage::Ringing(_) => continue,
                    ServerMessage::Accepted(_) => break,
                    other => return Err(BenchError::Protocol(format!("caller got {other:?}"))),
                }
            }
            let latency = sent.elapsed().as_micros() as u64;
            Ok::<_, BenchError>((
                Pair {
                    caller,
                    callee,
                    call_id,
                },
                latency,
            ))
        });
    }
    let mut pairs = Vec::new();
    let mut latencies_us = Vec::new();
    while let Some(r) = set.join_next().await {
        let (pair, latency) = r??;
        pairs.push(pair);
        latencies_us.push(latency);
    }
    Ok(SetupResult {
        pairs,
        latencies_us,
        wall: start.elapsed(),
    })
}

pub struct RelayResult {
    pub sent: u64,
    pub received: u64,
    pub latencies_us: Vec<u64>,
    pub wall: Duration,
}

/// Both sides of every call send `candidate`s carrying their send time, at `rate` messages
/// a second in total, for `seconds`; receivers record sender-to-receiver latency. With
/// `stagger`, the senders' ticks are spread evenly over one period instead
/// of all falling at the same instant (every client sends its first message at once and
/// then every period: bursts of one message per client), so that the server sees a
/// smooth rate.
pub async fn relay_paced(
    pairs: Vec<Pair>,
    rate: u64,
    seconds: u64,
    stagger: bool,
) -> Result<RelayResult, BenchError> {
    let clients = (pairs.len() * 2) as u64;
    let per_client = rate as f64 / clients as f64;
    let count = (per_client * seconds as f64).round() as u64;
    let period = Duration::from_secs_f64(1.0 / per_client);
    let origin = Arc::new(Instant::now());
    let start = Instant::now();
    let mut senders = JoinSet::new();
    let mut receivers = JoinSet::new();
    for pair in pairs {
        for ws in [pair.caller, pair.callee] {
            let (sink, mut stream) = ws.split();
            let (call_id, origin2) = (pair.call_id.clone(), origin.clone());
            let offset = if stagger {
                period.mul_f64(senders.len() as f64 / clients as f64)
            } else {
                Duration::ZERO
            };
            senders.spawn(send_paced(
                sink,
                call_id,
                origin.clone(),
                count,
                period,
                offset,
            ));
            receivers.spawn(async move {
                let mut latencies = Vec::with_capacity(count as usize);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 30);
                while (latencies.len() as u64) < count {
                    let frame = match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(Some(Ok(frame))) => frame,
                        _ => break,
                    };
                    let Message::Text(text) = frame else { continue };
                    if let Ok(ServerMessage::Candidate(c)) =
                        signaling_protocol::parse_server_message(&text)
                        && let Some(sent_ns) = c
                            .candidate
                            .and_then(|c| c.candidate.strip_prefix("t:")?.parse::<u64>().ok())
                    {
                        let now_ns = origin2.elapsed().as_nanos() as u64;
                        latencies.push(now_ns.saturating_sub(sent_ns) / 1000);
                    }
                }
                latencies
            });
        }
    }
    let mut sent = 0;
    while let Some(r) = senders.join_next().await {
        sent += r??;
    }
    let mut latencies_us = Vec::new();
    while let Some(r) = receivers.join_next().await {
        latencies_us.extend(r?);
    }
    Ok(RelayResult {
        sent,
        received: latencies_us.len() as u64,
        latencies_us,
        wall: start.elapsed(),
    })
}

async fn send_paced(
    mut sink: SplitSink<Ws, Message>,
    call_id: CallId,
    origin: Arc<Instant>,
    count: u64,
    period: Duration,
    offset: Duration,
) -> Result<u64, BenchError> {
    use futures_util::SinkExt;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    for _ in 0..count {
        tick.tick().await;
        let t = origin.elapsed().as_nanos();
        let candidate = IceCandidate {
            candidate: format!("t:{t}"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        };
        let msg = ClientMessage::Candidate(Candidate {
            call_id: call_id.clone(),
            candidate: Some(candidate),
        });
        let text = serde_json::to_string(&msg).map_err(|e| BenchError::Protocol(e.to_string()))?;
        tokio::time::timeout(client::STEP, sink.send(Message::Text(text.into()))).await??;
    }
    Ok(count)
}

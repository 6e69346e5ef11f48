//! A TCP proxy whose connections a test can cut: a lost network for the SDK's and the web
//! demo's resume tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to `upstream` whose open connections [`cut`](Self::cut) drops at once, as
/// a network change would.
pub struct CutProxy {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    blocked: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = conns.clone();
        let blocked: Arc<AtomicBool> = Arc::default();
        let refuse = blocked.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    continue; // dropped at once: the network is down
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        CutProxy {
            addr,
            conns,
            blocked,
            accept,
        }
    }

    /// While blocked, new connections are closed as soon as they arrive.
    pub fn block(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }

    /// Drops every connection open now; new ones are still accepted.
    pub fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::wait::within_for;

    const WAIT: Duration = Duration::from_secs(5);

    /// An upstream that answers every connection with "hi" and keeps it open.
    async fn greeter() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn.write_all(b"hi").await;
                open.push(conn);
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_cut_closes_open_connections_and_a_block_refuses_new_ones() {
        let proxy = CutProxy::start(greeter().await).await;
        let mut conn = TcpStream::connect(proxy.addr).await.unwrap();
        let mut buf = [0u8; 2];
        within_for(WAIT, "the greeting", conn.read_exact(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf, b"hi");
        proxy.cut();
        let read = within_for(WAIT, "the cut", conn.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        proxy.block(true);
        let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
        let read = within_for(WAIT, "the refusal", refused.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

//! Shared by the browser tests: a real signaling server (with its embedded TURN relay, on
//! loopback, default peer policy), chromedriver and headless Chromium with a fake camera and
//! microphone (see shared/TESTING.md), one browser per page, and helpers that drive the demo
//! the way a person does: type a name, click, read what the page says. The browser, the
//! example launcher and the cut proxy are test-support's.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use signaling::{Config, Server};

use test_support::browser::{Driver, browser_installed};
#[allow(unused_imports)]
pub use test_support::browser::{Launch, Page, WAIT, assert_no_console_errors, within};
#[allow(unused_imports)]
pub use test_support::cut_proxy::CutProxy;
#[allow(unused_imports)]
pub use test_support::example;
use test_support::signaling_server::{loopback_turn, server_with};

/// One browser test at a time per test binary: each page is a whole Chromium with a fake
/// camera, and the CI machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Everything a browser test needs: the server, chromedriver, the pages it opened.
pub struct Lab {
    pub server: Server,
    /// A second signaling node sharing `redis` with `server` ([`Lab::start_two_nodes`]).
    pub second: Option<Server>,
    redis: Option<test_support::redis_server::RedisServer>,
    driver: Driver,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Lab {
    /// A signaling server with the embedded relay on 127.0.0.1 and chromedriver; `None`
    /// when the browser is not installed (outside CI).
    pub async fn start() -> Option<Lab> {
        Lab::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Option<Lab> {
        if !browser_installed() {
            return None;
        }
        let serial = ONE_AT_A_TIME.lock().await;
        let server = server_with(|c| {
            c.turn = Some(loopback_turn());
            tweak(c);
        })
        .await;
        Some(Lab {
            server,
            second: None,
            redis: None,
            driver: Driver::start().await,
            _serial: serial,
        })
    }

    /// Two signaling nodes (each with its embedded relay) sharing a private Redis; `None`
    /// when the browser or redis-server is not installed (outside CI).
    pub async fn start_two_nodes() -> Option<Lab> {
        if !browser_installed() {
            return None;
        }
        let redis = test_support::redis_server::RedisServer::start()?;
        let serial = ONE_AT_A_TIME.lock().await;
        let mut nodes = Vec::new();
        for name in ["node0", "node1"] {
            let cluster = signaling::ClusterSettings::new(&redis.url(), name).unwrap();
            nodes.push(
                server_with(|c| {
                    c.turn = Some(loopback_turn());
                    c.cluster = Some(cluster);
                })
                .await,
            );
        }
        let second = nodes.pop();
        Some(Lab {
            server: nodes.pop().unwrap(),
            second,
            redis: Some(redis),
            driver: Driver::start().await,
            _serial: serial,
        })
    }

    /// The demo's URL on the second node.
    pub fn second_url(&self) -> String {
        let second = self.second.as_ref().expect("a lab with two nodes");
        format!("http://{}/", second.local_addr())
    }

    /// The demo's URL on this server.
    pub fn url(&self) -> String {
        format!("http://{}/", self.server.local_addr())
    }

    /// The signaling WebSocket URL (for the SDK examples).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.local_addr())
    }

    /// A new browser (its own profile, fake camera and microphone) showing `url`.
    pub async fn page_at(&self, url: &str) -> Page {
        self.driver.page(url, &Launch::default()).await
    }

    /// A new browser started as `launch` says, showing `url`.
    pub async fn page_with(&self, url: &str, launch: &Launch) -> Page {
        self.driver.page(url, launch).await
    }

    pub async fn page(&self) -> Page {
        self.page_at(&self.url()).await
    }
}

/// How many allocations the server's embedded relay holds.
pub fn relay_allocations(server: &Server) -> usize {
    server.turn().unwrap().allocation_count()
}

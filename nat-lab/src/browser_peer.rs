//! A browser peer: headless Chromium inside one of the lab's namespaces, driven by a
//! chromedriver outside it (over `--remote-debugging-pipe`, which crosses namespaces), and
//! its call to the SDK's `answer` example.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::browser::{Driver, Launch, Page};
use test_support::example::receives_rtp;

use crate::lab::{NatLab, PUBLIC};
use crate::pki::Pki;
use crate::sdk_call::{CONNECT, Pair, first_media, last_path};

pub struct BrowserPeer {
    pub page: Page,
    _driver: Driver,
}

#[derive(Debug)]
pub struct BrowserOutcome {
    /// The page's `demo.call.stats()` once the relay was measured.
    pub stats: Value,
    /// The page's path badge (`direct …`, `via relay … over TCP`).
    pub badge: String,
    /// The browser's selected pair, from `stats`.
    pub browser: Pair,
    /// bob's (the SDK answerer's) selected pair.
    pub bob: Pair,
    /// From clicking Call until both sides receive RTP.
    pub setup: Duration,
    /// Bytes the relay carried over one of bob's status periods once media flowed.
    pub relayed_in_call: u64,
}

impl NatLab {
    /// Chromium in namespace `name` showing the web demo. It trusts `pki`'s CA for TURN
    /// over TLS, and treats the lab's plain-http demo as a secure origin (for the camera).
    pub async fn browser(&self, name: &str, pki: &Pki) -> BrowserPeer {
        let wrapper = pki.dir.join(format!("chromium-in-{name}"));
        let script = format!(
            "#!/bin/sh\nexec {} env HOME={} /usr/bin/chromium \"$@\"\n",
            self.netns_exec(name),
            pki.home.display()
        );
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let demo = format!("http://{PUBLIC}:8080");
        let launch = Launch {
            binary: wrapper,
            args: vec![
                "--remote-debugging-pipe".into(),
                format!("--unsafely-treat-insecure-origin-as-secure={demo}"),
            ],
        };
        let driver = Driver::start().await;
        let page = driver.page(&format!("{demo}/"), &launch).await;
        BrowserPeer {
            page,
            _driver: driver,
        }
    }

    /// alice (Chromium in `browser_ns`) calls bob (the SDK's answer example in
    /// `answer_ns`); waits until both receive RTP (at most [`CONNECT`]), the page decodes
    /// bob's video, and, given `settles`, a JS condition on the page's stats `s` holds
    /// (Chromium may switch pairs once more have been checked). Then measures what the
    /// relay carries over one more status period of bob's and hangs up from the page.
    /// Panics if any of it fails.
    pub async fn browser_call(
        &self,
        pki: &Pki,
        browser_ns: &str,
        answer_ns: &str,
        settles: Option<&str>,
    ) -> BrowserOutcome {
        let n = self.next_call();
        let (bob_name, alice_name) = (format!("bob{n}"), format!("alice{n}"));
        let bob = self.spawn_peer(answer_ns, &self.programs().answer, &bob_name, &["--once"]);
        bob.wait_line("bob to sign in", |l| l.contains("waiting for calls"))
            .await;
        let alice = self.browser(browser_ns, pki).await;
        alice.page.sign_in(&alice_name, false).await;
        let start = Instant::now();
        alice.page.call(&bob_name).await;
        let media = async {
            let page = first_page_media(&alice.page).await;
            page.max(first_media(&bob).await)
        };
        let Ok(media) = tokio::time::timeout(CONNECT, media).await else {
            let a = page_pair(&alice.page.stats().await);
            let a = if a.local == "none" {
                "not connected yet".into()
            } else {
                a.to_string()
            };
            let b = last_path(&bob);
            panic!("no media both ways within {CONNECT:?} (A: {a}; B: {b})");
        };
        let setup = media - start;
        alice.page.wait_media().await;
        if let Some(condition) = settles {
            let expr = format!("window.demo.call.stats().then(s => ({condition}) && s)");
            alice.page.wait_js(condition, &expr).await;
        }
        bob.wait_line("a status line with RTP at bob", receives_rtp)
            .await;
        let relayed_in_call = self.relayed_over_a_status_period(&bob).await;
        let stats = alice.page.stats().await;
        let badge = alice.page.text("path").await;
        let bob_pair = bob
            .lines()
            .iter()
            .rev()
            .find(|l| receives_rtp(l))
            .and_then(|l| Pair::from_status(l))
            .expect("a status line with a pair at bob");
        alice.page.click("hangup").await;
        bob.wait_line("the end of the call at bob", |l| {
            l.starts_with("call ended")
        })
        .await;
        assert!(bob.exit().await, "the answer example failed");
        let outcome = BrowserOutcome {
            browser: page_pair(&stats),
            stats,
            badge,
            bob: bob_pair,
            setup,
            relayed_in_call,
        };
        eprintln!("{outcome:?}");
        outcome
    }
}

/// When the page first counted an RTP packet in (audio or video); polls every 100 ms, so
/// it is late by up to that much (the caller bounds the wait).
async fn first_page_media(page: &Page) -> Instant {
    let expr = "window.demo.call ? window.demo.call.stats()
        .then(s => s.audioPacketsIn > 0 || s.framesDecoded > 0) : false";
    loop {
        if page.eval(expr).await == Value::Bool(true) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The browser's selected pair from the page's stats summary.
fn page_pair(stats: &Value) -> Pair {
    let text = |key: &str| stats[key].as_str().map(str::to_owned);
    Pair {
        local: text("local").unwrap_or_else(|| "none".into()),
        remote: text("remote").unwrap_or_else(|| "none".into()),
        relay: text("relayProtocol"),
    }
}

//! The web demo over `https://` and `wss://` from the signaling server's own TLS listener,
//! as on a LAN without a reverse proxy: Chromium trusts the deployment's CA (made by the
//! test, in the browser's NSS database), the page is a secure context, and two people call.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::PathBuf;

use signaling::ListenerTls;
use support::{Lab, Launch, assert_no_console_errors};
use test_support::pki::{Leaf, TestCa};
use test_support::require::require;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_over_https_calls_when_the_browser_trusts_the_ca() {
    if !require("certutil", "libnss3-tools") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-https");
    let _ = std::fs::remove_dir_all(&dir);
    let ca = TestCa::new(&dir, "demo-https");
    let files = ca.issue("server", &Leaf::default());
    let home = dir.join("home");
    ca.trust_in_nss(&home);
    let launch = Launch::with_home(&home);
    let tls = ListenerTls::load(&files.cert, &files.key).unwrap();
    let Some(lab) = Lab::start_with(|c| c.tls = Some(tls)).await else {
        return;
    };
    let url = format!("https://{}/", lab.server.local_addr());

    let alice = lab.page_with(&format!("{url}?user=alice"), &launch).await;
    let bob = lab.page_with(&url, &launch).await;
    for page in [&alice, &bob] {
        assert_eq!(page.eval("location.protocol").await, "https:");
        // The camera needs a secure context; the CA's certificate gives it one.
        assert_eq!(page.eval("window.isSecureContext").await, true);
    }
    alice.click("connect").await;
    alice.wait_status("Ready").await;
    bob.sign_in("bob", false).await;
    alice.call("bob").await;
    bob.accept("alice").await;
    for page in [&alice, &bob] {
        page.wait_media().await;
    }
    alice.wait_status("Connected with bob").await;
    // The demo's signaling went over wss:// (derived from the page's https:// origin; a
    // ws:// socket to a TLS listener cannot connect, and the page would block it anyway).
    assert_no_console_errors(&[&alice, &bob], &[]).await;
    alice.close().await;
    bob.close().await;
}

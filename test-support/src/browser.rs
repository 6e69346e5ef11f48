//! Headless Chromium driven over WebDriver: chromedriver, one browser per page (its own
//! profile, fake camera and microphone, see shared/TESTING.md), and a `Page` with helpers
//! that use the demo the way a person does. For the browser tests and the NAT lab (which
//! launches Chromium inside a network namespace through `Launch::binary`).

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::require::require;
use crate::wait::within_for;

/// How long a browser test waits for something that must happen.
pub const WAIT: Duration = Duration::from_secs(30);

/// Fails the test if `f` takes longer than [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    within_for(WAIT, what, f).await
}

/// Chromium and chromedriver are installed; if not, a loud skip, or a failure under
/// `CI=true`.
pub fn browser_installed() -> bool {
    require("chromium", "chromium") && require("chromedriver", "chromium-driver")
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How a page's Chromium starts.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The browser executable (or a script that runs it, e.g. inside a namespace).
    pub binary: PathBuf,
    /// Flags added to the usual ones.
    pub args: Vec<String>,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            binary: CHROMIUM.into(),
            args: Vec::new(),
        }
    }
}

impl Launch {
    /// Chromium with `HOME=home`, so that it reads its certificate trust from
    /// `home/.pki/nssdb` (see `pki::TestCa::trust_in_nss`); the wrapper script that sets
    /// it is written to `home/chromium`.
    pub fn with_home(home: &Path) -> Launch {
        std::fs::create_dir_all(home).unwrap();
        let wrapper = home.join("chromium");
        let script = format!(
            "#!/bin/sh\nexec env HOME={} {CHROMIUM} \"$@\"\n",
            home.display()
        );
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Launch {
            binary: wrapper,
            args: Vec::new(),
        }
    }
}

/// A chromedriver process on a free loopback port.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub async fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        within("chromedriver to listen", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new browser (its own profile, fake camera and microphone) showing `url`.
    pub async fn page(&self, url: &str, launch: &Launch) -> Page {
        let profile = std::env::temp_dir().join(format!(
            "browser-tests-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--window-size=1000,1100".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(launch.args.iter().cloned());
        let caps = json!({
            "goog:chromeOptions": { "binary": launch.binary, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = within(
            "a Chromium session",
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&self.url),
        )
        .await
        .expect("start Chromium through chromedriver");
        client.goto(url).await.unwrap();
        Page { client, profile }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static PROFILES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One person's browser tab with the demo.
pub struct Page {
    pub client: Client,
    profile: PathBuf,
}

impl Page {
    /// Types `user` into the sign-in form (ticking "relay only" when asked) and connects;
    /// waits until the camera runs.
    pub async fn sign_in(&self, user: &str, relay_only: bool) {
        self.sign_in_form(user, relay_only).await;
        self.wait_status("Ready").await;
    }

    /// Fills in and submits the sign-in form, without waiting for the outcome.
    pub async fn sign_in_form(&self, user: &str, relay_only: bool) {
        self.fill("user", user).await;
        let ticked = self
            .eval("document.getElementById('relay-only').checked")
            .await;
        if ticked != relay_only {
            self.click("relay-only").await;
        }
        self.click("connect").await;
    }

    /// Types `who` and clicks Call.
    pub async fn call(&self, who: &str) {
        self.fill("callee", who).await;
        self.click("call").await;
    }

    /// Waits for the incoming-call panel and clicks Accept.
    pub async fn accept(&self, from: &str) {
        self.wait_incoming(from).await;
        self.click("accept").await;
    }

    /// Waits until the page shows `from` calling (Accept / Decline).
    pub async fn wait_incoming(&self, from: &str) {
        self.wait_text("incoming-text", &format!("{from} is calling"))
            .await;
    }

    pub async fn click(&self, id: &str) {
        let el = self.client.find(Locator::Id(id)).await.unwrap();
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    pub async fn fill(&self, id: &str, text: &str) {
        let el = self.client.find(Locator::Id(id)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn text(&self, id: &str) -> String {
        let el = self.client.find(Locator::Id(id)).await.unwrap();
        el.text().await.unwrap()
    }

    /// Waits until `#id` shows text containing `needle`.
    pub async fn wait_text(&self, id: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text(id).await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "#{id} never said {needle:?}; it says {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the status line contains `needle`.
    pub async fn wait_status(&self, needle: &str) -> String {
        self.wait_text("status", needle).await
    }

    /// Evaluates `expr` (may be a promise) in the page.
    pub async fn eval(&self, expr: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             Promise.resolve().then(() => {expr}).then(v => done(v), e => done({{error: String(e)}}));"
        );
        self.client.execute_async(&script, vec![]).await.unwrap()
    }

    /// Waits until `expr` is truthy in the page.
    pub async fn wait_js(&self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.eval(expr).await;
            if !(v.is_null() || v == json!(false)) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `demo.call.stats()`: path, candidate types, RTT, bytes, frames decoded.
    pub async fn stats(&self) -> Value {
        self.eval("window.demo.call ? window.demo.call.stats() : null")
            .await
    }

    /// Waits until the call shows `connected`, then checks remote video frames are being
    /// decoded (the count rises) and audio packets arrive. Returns the last stats.
    pub async fn wait_media(&self) -> Value {
        self.wait_text("call-state", "connected").await;
        self.wait_js(
            "video frames decoded",
            "window.demo.call.stats().then(s => s.framesDecoded > 0 && s.audioPacketsIn > 0)",
        )
        .await;
        let before = self.stats().await["framesDecoded"].as_u64().unwrap();
        let expr = format!("window.demo.call.stats().then(s => s.framesDecoded > {before} + 10)");
        self.wait_js("more video frames decoded", &expr).await;
        self.stats().await
    }

    /// Browser console entries at level SEVERE (uncaught exceptions, console.error, failed
    /// requests), except those whose text contains one of `allowed`.
    pub async fn console_errors(&self, allowed: &[&str]) -> Vec<String> {
        let log = self.client.issue_cmd(BrowserLog).await.unwrap();
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .filter(|m| !allowed.iter().any(|a| m.contains(a)))
            .collect()
    }

    /// Saves a PNG of the page as `<dir>/browser-artifacts/<name>.png` (a test passes
    /// its `CARGO_TARGET_TMPDIR`).
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        self.eval("window.scrollTo(0, 0)").await;
        let png = self.client.screenshot().await.unwrap();
        let dir = dir.join("browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // A test that failed did not close its pages: end that Chromium by its profile.
        let _ = Command::new("pkill")
            .args(["-f", "--"])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// chromedriver's `POST /session/{id}/se/log` for the browser console.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Asserts that none of `pages` logged an error to its console.
pub async fn assert_no_console_errors(pages: &[&Page], allowed: &[&str]) {
    for (i, page) in pages.iter().enumerate() {
        let errors = page.console_errors(allowed).await;
        assert!(errors.is_empty(), "page {i} console errors: {errors:#?}");
    }
}

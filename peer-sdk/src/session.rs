//! What the SDK remembers of its signaling session across sockets, without any I/O:
//! the resume token, how many messages it received (the `received` extension of
//! docs/protocol.md) and what a `welcome` means for the calls in progress.

use server_kit::TokenBucket;
use signaling_protocol::{Hello, IceServer, PROTOCOL_VERSION, Ping, Welcome};
use std::time::{Duration, Instant};

/// The contract's default message limit per connection (shared/PROTOCOL.md, "Limits"), for
/// a server whose `welcome` does not say.
const DEFAULT_RATE: (u32, u32) = (50, 200);

/// What a `welcome` on a new socket means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuity {
    /// The first session of this client.
    New,
    /// The server re-attached the old session; calls go on and nothing was lost.
    Resumed,
    /// The old session was gone (resume ttl passed): its calls have ended.
    Lost,
}

/// The signaling session's state, fed with what the socket delivers.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    user: String,
    token: Option<String>,
    resume: Option<String>,
    received: u64,
    heartbeat: Duration,
    ice_servers: Vec<IceServer>,
    /// The server's message limit on the current socket: sustained per second, burst.
    rate: (u32, u32),
}

impl Session {
    pub(crate) fn new(user: String, token: Option<String>) -> Self {
        Self {
            user,
            token,
            resume: None,
            received: 0,
            heartbeat: Duration::from_secs(20),
            ice_servers: Vec::new(),
            rate: DEFAULT_RATE,
        }
    }

    /// The `hello` for the next socket: it resumes the session if there is one, and opts
    /// in to acknowledged delivery.
    pub(crate) fn hello(&self) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            user: self.user.clone(),
            token: self.token.clone(),
            resume: self.resume.clone(),
            // 0 until a welcome: the count restarts with every session that was not resumed.
            received: Some(self.received),
        }
    }

    /// Takes a `welcome`.
    pub(crate) fn welcome(&mut self, welcome: &Welcome) -> Continuity {
        let continuity = match (&self.resume, welcome.resumed) {
            (None, _) => Continuity::New,
            (Some(_), true) => Continuity::Resumed,
            (Some(_), false) => Continuity::Lost,
        };
        if continuity != Continuity::Resumed {
            self.received = 0;
        }
        self.resume = Some(welcome.session.clone());
        self.heartbeat = Duration::from_secs(welcome.heartbeat_s.max(1));
        self.ice_servers = welcome.ice_servers.clone();
        self.rate = (
            welcome.rate_per_s.unwrap_or(DEFAULT_RATE.0),
            welcome.rate_burst.unwrap_or(DEFAULT_RATE.1),
        );
        continuity
    }

    /// Paces what the client sends on a new socket so that the server never drops a
    /// message as over its limit (a dropped candidate or hangup would leave a call hanging):
    /// 90% of the server's rate and burst, so that timing differences between the two
    /// clocks cannot tip it over.
    pub(crate) fn pace(&self, now: Instant) -> TokenBucket {
        let (per_s, burst) = self.rate;
        let margin = |n: u32| u64::from((n - n / 10).max(1));
        TokenBucket::new(margin(per_s), margin(burst), now)
    }

    /// Counts a message received after `welcome`.
    pub(crate) fn received(&mut self) {
        self.received += 1;
    }

    /// The heartbeat, acknowledging what arrived so far.
    pub(crate) fn ping(&self) -> Ping {
        Ping {
            received: Some(self.received),
        }
    }

    /// How often to send `ping`: half the server's heartbeat, so one lost ping is no harm.
    pub(crate) fn ping_every(&self) -> Duration {
        self.heartbeat / 2
    }

    /// How long a silent socket is trusted: the server answers every `ping`, so silence for
    /// twice the heartbeat means the socket is dead even if TCP has not noticed.
    pub(crate) fn silence_limit(&self) -> Duration {
        self.heartbeat * 2
    }

    /// The ICE servers of the latest `welcome` (fresh TURN credentials on each).
    pub(crate) fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling_protocol::UserName;

    fn welcome(session: &str, resumed: bool) -> Welcome {
        Welcome {
            version: 1,
            user: UserName::new("alice").unwrap(),
            session: session.into(),
            resumed,
            heartbeat_s: 20,
            resume_ttl_s: 30,
            ice_servers: vec![],
            rate_per_s: Some(10),
            rate_burst: Some(20),
        }
    }

    #[test]
    fn resumes_with_the_count_of_messages_received() {
        let mut s = Session::new("alice".into(), None);
        assert_eq!(s.hello().received, Some(0));
        assert_eq!(s.hello().resume, None);
        assert_eq!(s.welcome(&welcome("t1", false)), Continuity::New);
        s.received();
        s.received();
        assert_eq!(s.ping().received, Some(2));
        let hello = s.hello();
        assert_eq!(hello.resume.as_deref(), Some("t1"));
        assert_eq!(hello.received, Some(2));
        assert_eq!(s.welcome(&welcome("t1", true)), Continuity::Resumed);
        s.received();
        assert_eq!(s.ping().received, Some(3));
    }

    #[test]
    fn a_lost_session_starts_counting_again() {
        let mut s = Session::new("alice".into(), Some("jwt".into()));
        s.welcome(&welcome("t1", false));
        s.received();
        assert_eq!(s.welcome(&welcome("t2", false)), Continuity::Lost);
        assert_eq!(s.ping().received, Some(0));
        assert_eq!(s.hello().resume.as_deref(), Some("t2"));
        assert_eq!(s.hello().token.as_deref(), Some("jwt"));
        assert_eq!(s.ping_every(), Duration::from_secs(10));
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn paces_under_the_limit_the_welcome_names() {
        let now = Instant::now(); // test code: any instant will do
        let mut s = Session::new("alice".into(), None);
        // Before a welcome (or from a server that does not say): the contract's 50/s, 200.
        let mut pace = s.pace(now);
        assert_eq!((0..500).filter(|_| pace.allow(now)).count(), 180);
        s.welcome(&welcome("t1", false));
        // The welcome's 10/s, burst 20: 18 at once, then one every 1/9 s.
        let mut pace = s.pace(now);
        assert_eq!((0..100).filter(|_| pace.allow(now)).count(), 18);
        assert_eq!(pace.wait(now).as_millis(), 111);
    }
}

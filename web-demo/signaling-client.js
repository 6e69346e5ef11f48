// signaling-client.js: a browser client for the signaling server's WebSocket protocol
// (shared/PROTOCOL.md version 1, plus the `received` extension of docs/protocol.md).
// No framework, no build step: import it as an ES module.
//
//   import { SignalingClient } from "./signaling-client.js";
//   const sig = new SignalingClient("wss://example.com/ws", { user: "alice" });
//   sig.addEventListener("invite", (e) => console.log("call from", e.detail.from));
//   const welcome = await sig.connect();          // rejects with a SignalingError
//   new RTCPeerConnection({ iceServers: sig.iceServers });
//   sig.invite("call-1", "bob", offer.sdp);
//
// What it does for you:
// - `hello` / `welcome`, and a `ping` every heartbeat_s / 2 (the server drops silent clients).
// - When the socket drops (network change, server restart, a dead socket noticed by the
//   missing `pong`), it reconnects with jittered exponential backoff and resumes the
//   session: calls survive, and no server message is lost (it counts what it received and
//   tells the server in `hello.received`). Messages sent while disconnected are queued and
//   sent after the resume.
// - A server node that drains (a rolling upgrade) closes with code 4001: the client
//   reconnects at once (within a random part of minBackoffMs, no backoff), through the load
//   balancer to another node, and resumes there the same way.
// - If the session could not be resumed (it expired), the `reconnected` event says
//   `resumed: false`: the server has ended every call of the old session.
//
// Events (all CustomEvent, the server message or details in `event.detail`):
// - one per server message type: `invite`, `ringing`, `accepted`, `candidate`,
//   `renegotiate`, `ended`, `error`, `pong`; and `message` for every one of them;
// - `reconnecting` {attempt, delayMs, code}: the socket dropped (its close code; 4901: no
//   `pong` in time, 4902: no `welcome` in time), retrying in delayMs;
// - `reconnected` {resumed, welcome}: signed in again;
// - `closed` {code, message}: gone for good (close() was called, or the server refused
//   the sign-in with `invalid_user` / `unauthorized`).

/** The server's node drains: resume now, elsewhere (no backoff). */
const CLOSE_MOVE = 4001;
/** Codes of our own for a socket we gave up on (in `reconnecting` events). */
const NO_PONG = 4901;
const NO_WELCOME = 4902;

/** An `error` from the server, or a failure to reach it (code `unreachable`). */
export class SignalingError extends Error {
  constructor(code, message, callId) {
    super(`${code}: ${message}`);
    this.name = "SignalingError";
    this.code = code;
    this.callId = callId;
  }
}

const PROTOCOL_VERSION = 1;
const CLOSE_SIGN_OFF = 1000; // the server ends the session at once (no resume)

export class SignalingClient extends EventTarget {
  /**
   * @param {string} url  the server's WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`
   * @param {{user: string, token?: string, minBackoffMs?: number, maxBackoffMs?: number,
   *          maxQueue?: number}} options
   */
  constructor(url, { user, token, minBackoffMs = 250, maxBackoffMs = 10000, maxQueue = 1000, signInTimeoutMs = 10000 }) {
    super();
    this.url = url;
    this.user = user;
    this.token = token;
    this.minBackoffMs = minBackoffMs;
    this.maxBackoffMs = maxBackoffMs;
    this.maxQueue = maxQueue;
    this.signInTimeoutMs = signInTimeoutMs;
    /** `idle` → `connecting` → `open` ⇄ `reconnecting`; `closed` at the end. */
    this.state = "idle";
    /** The last `welcome`: `ice_servers`, `heartbeat_s`, `resume_ttl_s`, `session`. */
    this.welcome = null;
    this._ws = null;
    this._queue = []; // messages waiting for an open, signed-in socket
    this._received = 0; // server messages received after `welcome`, for `hello.received`
    this._attempt = 0;
    this._timer = null; // heartbeat or reconnect timer
    this._lastHeard = 0;
    this._pingAt = null;
  }

  /** The RTCIceServer list from `welcome` (STUN and TURN with short-lived credentials). */
  get iceServers() {
    return this.welcome ? this.welcome.ice_servers : [];
  }

  /**
   * Signs in. Resolves with the `welcome` message; rejects with a SignalingError when the
   * server is unreachable (`unreachable`) or refuses the sign-in (`invalid_user`,
   * `unauthorized`, ...). Reconnects on its own afterwards.
   */
  connect() {
    if (this.state !== "idle") throw new Error("connect() was already called");
    this.state = "connecting";
    return new Promise((resolve, reject) => {
      this._firstWelcome = { resolve, reject };
      this._open();
    });
  }

  /** Signs off: the session and its calls end now (the other parties get `peer_lost`). */
  close() {
    if (this.state === "closed") return;
    const ws = this._ws;
    this._finish("closed", "signed off");
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(CLOSE_SIGN_OFF, "sign off");
  }

  /** Sends a message now, or after the reconnect if the socket is down. */
  send(message) {
    if (this.state === "closed") throw new SignalingError("closed", "the client is closed");
    if (this.state === "open" && this._ws.readyState === WebSocket.OPEN) {
      this._ws.send(JSON.stringify(message));
    } else if (this._queue.length < this.maxQueue) {
      this._queue.push(message);
    } else {
      throw new SignalingError("queue_full", "too many messages waiting for the reconnect");
    }
  }

  invite(callId, to, offer, meta) {
    const m = { type: "invite", call_id: callId, to, offer };
    if (meta !== undefined) m.meta = meta;
    this.send(m);
  }
  accept(callId, answer) {
    this.send({ type: "accept", call_id: callId, answer });
  }
  reject(callId, reason = "declined") {
    this.send({ type: "reject", call_id: callId, reason });
  }
  /** `candidate`: an RTCIceCandidate (sent as its toJSON()) or null for end of candidates. */
  candidate(callId, candidate) {
    const c = candidate && typeof candidate.toJSON === "function" ? candidate.toJSON() : candidate;
    this.send({ type: "candidate", call_id: callId, candidate: c ?? null });
  }
  /** `description`: {type: "offer" | "answer", sdp}. */
  renegotiate(callId, description) {
    this.send({ type: "renegotiate", call_id: callId, description: { type: description.type, sdp: description.sdp } });
  }
  hangup(callId) {
    this.send({ type: "hangup", call_id: callId });
  }

  // ---- the socket ----

  _open() {
    const resuming = this.welcome !== null;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      // A malformed URL: nothing to retry.
      this._fail(new SignalingError("bad_url", e.message));
      return;
    }
    this._ws = ws;
    let signedIn = false;
    // No `welcome` within signInTimeoutMs (a proxy that accepts and stalls): try again.
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      if (signedIn || ws !== this._ws) return;
      this._lost(NO_WELCOME);
      try { ws.close(); } catch { /* already closing */ }
    }, this.signInTimeoutMs);
    ws.onopen = () => {
      const hello = { type: "hello", version: PROTOCOL_VERSION, user: this.user, received: this._received };
      if (this.token) hello.token = this.token;
      if (resuming) hello.resume = this.welcome.session;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (ws !== this._ws) return;
      this._lastHeard = performance.now();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; ignore anything else
      }
      if (!signedIn) {
        if (msg.type === "welcome") {
          signedIn = true;
          this._signedIn(msg, resuming);
        } else if (msg.type === "error") {
          // invalid_user or unauthorized: the server closes the socket; do not retry.
          this._fail(new SignalingError(msg.code, msg.message));
        }
        return;
      }
      this._received += 1;
      this._emit(msg.type, msg);
      this._emit("message", msg);
    };
    ws.onclose = (event) => {
      if (ws !== this._ws || this.state === "closed") return;
      this._lost(event.code);
    };
    ws.onerror = () => {}; // onclose follows, with the code
  }

  _signedIn(welcome, resuming) {
    const resumed = resuming && welcome.resumed === true;
    if (!resumed) {
      this._received = 0;
      // Messages queued for calls of a session that no longer exists would only earn
      // `unknown_call` errors.
      this._queue = this._queue.filter((m) => !("call_id" in m));
    }
    this.welcome = welcome;
    this.state = "open";
    this._attempt = 0;
    const queued = this._queue;
    this._queue = [];
    for (const m of queued) this._ws.send(JSON.stringify(m));
    this._heartbeat();
    if (this._firstWelcome) {
      this._firstWelcome.resolve(welcome);
      this._firstWelcome = null;
    } else {
      this._emit("reconnected", { resumed, welcome });
    }
  }

  _heartbeat() {
    clearTimeout(this._timer);
    const every = Math.max(1, this.welcome.heartbeat_s) * 500;
    this._pingAt = null;
    const tick = () => {
      if (this.state !== "open" || this._ws.readyState !== WebSocket.OPEN) return;
      // The last ping still unanswered after a whole heartbeat_s means the socket is dead,
      // even if the browser has not noticed yet. (Measured from the ping, not from the
      // last message: timers of a hidden tab may fire a minute late.)
      const now = performance.now();
      if (this._pingAt !== null && this._lastHeard < this._pingAt && now - this._pingAt > 2 * every) {
        const ws = this._ws;
        this._lost(NO_PONG);
        try { ws.close(); } catch { /* already closing */ }
        return;
      }
      if (this._pingAt === null || this._lastHeard >= this._pingAt) this._pingAt = now;
      this._ws.send(JSON.stringify({ type: "ping", received: this._received }));
      this._timer = setTimeout(tick, every);
    };
    this._timer = setTimeout(tick, every);
  }

  _lost(code) {
    clearTimeout(this._timer);
    this._ws = null;
    if (this._firstWelcome) {
      // Never signed in: the server is not there (or refused the upgrade).
      this._fail(new SignalingError("unreachable", `cannot reach ${this.url} (close code ${code})`));
      return;
    }
    this.state = "reconnecting";
    this._attempt += 1;
    const ceiling = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** (this._attempt - 1));
    const moveNow = code === CLOSE_MOVE && this._attempt === 1;
    // Moving: soon, but not all of a draining node's clients in the same millisecond.
    const delayMs = moveNow
      ? Math.round(Math.random() * this.minBackoffMs)
      : Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this._emit("reconnecting", { attempt: this._attempt, delayMs, code });
    this._timer = setTimeout(() => this._open(), delayMs);
  }

  _fail(error) {
    if (this._firstWelcome) {
      this._firstWelcome.reject(error);
      this._firstWelcome = null;
    }
    this._finish(error.code, error.message);
  }

  _finish(code, message) {
    clearTimeout(this._timer);
    const ws = this._ws;
    this._ws = null;
    this.state = "closed";
    this._queue = [];
    if (ws && code !== "closed") {
      try { ws.close(); } catch { /* already closed */ }
    }
    this._emit("closed", { code, message });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

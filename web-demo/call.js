// call.js: one call over a SignalingClient and an RTCPeerConnection. Reusable without the
// demo's UI, like signaling-client.js.
//
//   const call = Call.place(sig, "bob", { stream, chat: true });      // caller
//   sig.addEventListener("invite", (e) => {
//     const call = Call.incoming(sig, e.detail);                       // callee
//     call.accept({ stream });  // or call.reject("busy")
//   });
//   call.addEventListener("state", () => console.log(call.state));
//
// It does: trickle ICE both ways (candidates that arrive before the remote description are
// kept until it is set); mid-call renegotiation with `renegotiate` (the caller's offer wins
// a glare, the callee rolls back, like the Rust SDK); an ICE restart by the caller when the
// connection fails; a "chat" data channel; and `stats()` from getStats().
//
// Events: `state` (call.state changed: `ringing` → `connecting` → `connected` ⇄
// `reconnecting` → `ended`), `track` {track, streams}, `chat` {text}, `channel` {channel},
// `ended` {reason, local, detail}: `reason` is an `ended.reason` of the protocol, or
// `failed` (this side could not set the call up; `detail` says why).

const RESTART_AFTER_DISCONNECTED_MS = 2000;

export class Call extends EventTarget {
  constructor(sig, { id, peer, role, meta = null, relayOnly = false }) {
    super();
    this.sig = sig;
    this.id = id;
    this.peer = peer;
    /** `caller` or `callee`. */
    this.role = role;
    this.meta = meta;
    this.state = "ringing";
    this.endReason = null;
    this.remoteStream = new MediaStream();
    this.chat = null;
    this._pending = []; // remote candidates waiting for the remote description
    this._localPending = []; // the callee's candidates waiting for its `accept`
    this._established = false; // offer/answer done: renegotiation allowed
    this._makingOffer = false;
    this._disconnectedTimer = null;
    this._offer = null;
    this.pc = new RTCPeerConnection({
      iceServers: sig.iceServers,
      iceTransportPolicy: relayOnly ? "relay" : "all",
    });
    this._wire();
  }

  /** Calls `to`; returns at once (state `ringing`), the answer arrives as `accepted`. */
  static place(sig, to, { stream = null, relayOnly = false, meta, chat = true } = {}) {
    const call = new Call(sig, { id: crypto.randomUUID(), peer: to, role: "caller", meta, relayOnly });
    call._addMedia(stream);
    if (chat) call._useChannel(call.pc.createDataChannel("chat"));
    call._started = call._invite(to, meta);
    return call;
  }

  /** A call from an `invite` message; ring, then `accept()` or `reject()`. */
  static incoming(sig, invite, { relayOnly = false } = {}) {
    const call = new Call(sig, { id: invite.call_id, peer: invite.from, role: "callee", meta: invite.meta ?? null, relayOnly });
    call._offer = invite.offer;
    return call;
  }

  /** Answers an incoming call. */
  async accept({ stream = null } = {}) {
    if (this.role !== "callee" || this.state !== "ringing") return;
    this._setState("connecting");
    try {
      await this.pc.setRemoteDescription({ type: "offer", sdp: this._offer });
      if (this.state === "ended") return; // cancelled meanwhile
      this._addMedia(stream);
      const answer = await this.pc.createAnswer();
      if (this.state === "ended") return;
      await this.pc.setLocalDescription(answer);
      if (this.state === "ended") return;
      this.sig.accept(this.id, this.pc.localDescription.sdp);
      this._established = true;
      this._flushLocal();
      await this._flushRemote();
    } catch (e) {
      this._fail(`could not answer: ${e.message}`);
    }
  }

  /** Declines an incoming call (`declined` or `busy`). */
  reject(reason = "declined") {
    if (this.state === "ended") return;
    this._tell(() => this.sig.reject(this.id, reason));
    this._end(reason, true);
  }

  /** Ends the call (or cancels it while ringing). */
  hangup() {
    if (this.state === "ended") return;
    if (this.role === "callee" || this._invited) this._tell(() => this.sig.hangup(this.id));
    this._end("hangup", true);
  }

  /** Sends a chat message; false when the chat channel is not open. */
  sendChat(text) {
    if (!this.chat || this.chat.readyState !== "open") return false;
    this.chat.send(text);
    return true;
  }

  /**
   * Handles a server message about this call (the app routes by `call_id`). Messages are
   * applied one after another, in order.
   */
  handle(msg) {
    this._queue = (this._queue ?? Promise.resolve()).then(() => this._apply(msg));
    return this._queue;
  }

  async _apply(msg) {
    if (this.state === "ended") return;
    try {
      switch (msg.type) {
        case "ringing":
          this._emit("ringing", {});
          break;
        case "accepted":
          this._setState("connecting");
          try {
            await this.pc.setRemoteDescription({ type: "answer", sdp: msg.answer });
          } catch (e) {
            return this._fail(`the answer was not usable: ${e.message}`);
          }
          this._established = true;
          await this._flushRemote();
          break;
        case "candidate":
          if (!msg.candidate || !msg.candidate.candidate) return; // end of candidates
          if (this.pc.remoteDescription) await this.pc.addIceCandidate(msg.candidate);
          else this._pending.push(msg.candidate);
          break;
        case "renegotiate":
          await this._renegotiated(msg.description);
          break;
        case "ended":
          this._end(msg.reason, false);
          break;
        case "error":
          // Refused while being set up (e.g. a name the server does not accept): the
          // server has no such call, so it is over.
          if (this.state === "ringing" && this.role === "caller") {
            this._end("failed", false, `${msg.code}: ${msg.message}`);
          } else {
            this._emit("error", { code: msg.code, message: msg.message });
          }
          break;
      }
    } catch (e) {
      console.warn(`call ${this.id}: ${msg.type}: ${e.message}`);
    }
  }

  /** The session behind this call is gone (not resumed): the server ended the call. */
  sessionLost() {
    this._end("peer_lost", false);
  }

  /**
   * A snapshot from getStats(): `path` (`direct` or `relay`), the candidate types, RTT,
   * totals for bitrate, packets lost and video frames decoded.
   */
  async stats() {
    const report = await this.pc.getStats();
    const s = { path: null, local: null, remote: null, relayProtocol: null, rttMs: null, bytesIn: 0, bytesOut: 0, packetsLost: 0, framesDecoded: 0, audioPacketsIn: 0 };
    let pairId = null;
    report.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
    });
    report.forEach((r) => {
      if (r.type === "inbound-rtp") {
        s.bytesIn += r.bytesReceived ?? 0;
        s.packetsLost += Math.max(0, r.packetsLost ?? 0);
        if (r.kind === "video") s.framesDecoded += r.framesDecoded ?? 0;
        if (r.kind === "audio") s.audioPacketsIn += r.packetsReceived ?? 0;
      } else if (r.type === "outbound-rtp") {
        s.bytesOut += r.bytesSent ?? 0;
      } else if (!pairId && r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
        pairId = r.id;
      }
    });
    const pair = pairId && report.get(pairId);
    if (pair) {
      const local = report.get(pair.localCandidateId);
      s.local = local?.candidateType ?? null;
      // How this browser reaches its TURN server: udp, tcp or tls.
      if (s.local === "relay") s.relayProtocol = local.relayProtocol ?? null;
      s.remote = report.get(pair.remoteCandidateId)?.candidateType ?? null;
      s.path = s.local === "relay" || s.remote === "relay" ? "relay" : "direct";
      if (pair.currentRoundTripTime !== undefined) s.rttMs = pair.currentRoundTripTime * 1000;
    }
    return s;
  }

  // ---- internals ----

  _wire() {
    const pc = this.pc;
    pc.onicecandidate = (e) => {
      // The callee's candidates wait for its `accept` (they would only reach the caller
      // before the answer, where they are useless).
      if (this._established || this.role === "caller") this.sig.candidate(this.id, e.candidate);
      else this._localPending.push(e.candidate);
    };
    pc.ontrack = (e) => {
      this.remoteStream.addTrack(e.track);
      this._emit("track", { track: e.track, streams: e.streams });
    };
    pc.ondatachannel = (e) => this._useChannel(e.channel);
    pc.onconnectionstatechange = () => this._connectionChanged();
    pc.onnegotiationneeded = () => this._negotiate();
  }

  _addMedia(stream) {
    const kinds = new Set();
    if (stream) {
      for (const track of stream.getTracks()) {
        this.pc.addTrack(track, stream);
        kinds.add(track.kind);
      }
    }
    // Without a camera or microphone, still receive the other side's.
    if (this.role === "caller") {
      for (const kind of ["audio", "video"]) {
        if (!kinds.has(kind)) this.pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
  }

  _useChannel(channel) {
    this._emit("channel", { channel });
    if (channel.label !== "chat") return;
    this.chat = channel;
    channel.onmessage = (e) => this._emit("chat", { text: typeof e.data === "string" ? e.data : "<binary>" });
    channel.onopen = () => this._emit("chat-open", {});
  }

  async _invite(to, meta) {
    try {
      const offer = await this.pc.createOffer();
      if (this.state === "ended") return; // hung up meanwhile: the server never heard of it
      await this.pc.setLocalDescription(offer);
      if (this.state === "ended") return;
      this.sig.invite(this.id, to, this.pc.localDescription.sdp, meta);
      this._invited = true;
    } catch (e) {
      this._fail(`could not start the call: ${e.message}`);
    }
  }

  _flushLocal() {
    for (const c of this._localPending) this.sig.candidate(this.id, c);
    this._localPending = [];
  }

  async _flushRemote() {
    const pending = this._pending;
    this._pending = [];
    for (const c of pending) {
      try {
        await this.pc.addIceCandidate(c);
      } catch (e) {
        console.warn(`call ${this.id}: candidate: ${e.message}`);
      }
    }
  }

  async _negotiate() {
    if (!this._established || this.state === "ended") return;
    try {
      this._makingOffer = true;
      await this.pc.setLocalDescription();
      this.sig.renegotiate(this.id, this.pc.localDescription);
    } catch (e) {
      console.warn(`call ${this.id}: renegotiation: ${e.message}`);
    } finally {
      this._makingOffer = false;
    }
  }

  async _renegotiated(description) {
    const pc = this.pc;
    if (description.type === "offer") {
      const collision = this._makingOffer || pc.signalingState !== "stable";
      // Glare: the caller's offer wins; the callee drops its own and answers.
      if (collision && this.role === "caller") return;
      await pc.setRemoteDescription(description); // rolls back our offer if there was one
      await pc.setLocalDescription();
      this.sig.renegotiate(this.id, pc.localDescription);
    } else if (pc.signalingState === "have-local-offer") {
      await pc.setRemoteDescription(description);
    }
    await this._flushRemote();
  }

  _connectionChanged() {
    const s = this.pc.connectionState;
    if (this.state === "ended") return;
    clearTimeout(this._disconnectedTimer);
    if (s === "connected") {
      this._setState("connected");
    } else if (s === "disconnected" || s === "failed") {
      if (this.state === "connected") this._setState("reconnecting");
      // The caller restarts ICE (one side only, so the two restarts never cross).
      if (this.role === "caller") {
        const wait = s === "failed" ? 0 : RESTART_AFTER_DISCONNECTED_MS;
        this._disconnectedTimer = setTimeout(() => {
          if (this.state !== "ended" && this.pc.connectionState !== "connected") this.pc.restartIce();
        }, wait);
      }
    }
  }

  /** The browser could not do its part: tell the other side, end with `failed`. */
  _fail(message) {
    if (this.state === "ended") return;
    if (this.role === "callee" && !this._established) {
      this._tell(() => this.sig.reject(this.id, "declined"));
    } else if (this.role === "callee" || this._invited) {
      this._tell(() => this.sig.hangup(this.id));
    }
    this._end("failed", true, message);
  }

  /** Sends to the server; a client that is closed for good cannot, and that is fine here. */
  _tell(send) {
    try {
      send();
    } catch (e) {
      console.info(`call ${this.id}: not sent: ${e.message}`);
    }
  }

  _end(reason, local, detail = null) {
    if (this.state === "ended") return;
    clearTimeout(this._disconnectedTimer);
    this.endReason = reason;
    this._setState("ended");
    this.pc.close();
    this._emit("ended", { reason, local, detail });
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

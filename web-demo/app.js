// The demo page: sign in, see yourself, call someone by name, answer, talk.
// The protocol lives in signaling-client.js and the WebRTC side in call.js; this file is UI.

import { SignalingClient, SignalingError } from "./signaling-client.js";
import { Call } from "./call.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") || `${location.origin.replace(/^http/, "ws")}/ws`;

let sig = null;
let localStream = null;
let call = null; // the one call the page shows (ringing, connecting or connected)
let incoming = null; // an incoming call waiting for Accept / Decline
let statsTimer = null;
let lastBytes = null; // {at, in, out} for the bitrate

// For the console and the browser tests: the current state, nothing more.
window.demo = {
  get sig() { return sig; },
  get call() { return call; },
  get incoming() { return incoming; },
};

const ENDED = {
  hangup: (c, local) => (local ? "Call ended." : c.state0 === "ringing" && c.role === "callee" ? `${c.peer} cancelled the call.` : `${c.peer} hung up.`),
  declined: (c, local) => (local ? `You declined ${c.peer}'s call.` : `${c.peer} declined the call.`),
  busy: (c, local) => (local ? `You were busy: ${c.peer}'s call was declined.` : `${c.peer} is busy.`),
  unavailable: (c) => `${c.peer} is not online.`,
  timeout: (c) => (c.role === "caller" ? `${c.peer} did not answer.` : `Missed call from ${c.peer}.`),
  answered_elsewhere: () => "Answered on another device.",
  rejected_elsewhere: () => "Declined on another device.",
  peer_lost: (c) => `The connection to ${c.peer} was lost; the call ended.`,
  glare: (c) => `You and ${c.peer} called each other at the same time; one of the two calls goes on.`,
  failed: (c, local, detail) => `The call with ${c.peer} could not be set up (${detail}).`,
};

// The contract's rule for user names (PROTOCOL.md): checked here too, to say so at once.
const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

const ERRORS = {
  unreachable: "Cannot reach the signaling server. Is it running?",
  invalid_user: "That name is not allowed: use 1 to 64 letters, digits, '.', '_', '@' or '-'.",
  unauthorized: "This server needs a sign-in token.",
  bad_message: "The server did not understand a message",
  not_ready: "Not signed in yet.",
  unknown_call: "That call no longer exists.",
  call_exists: "A call with that id already exists.",
  bad_state: "That is not possible right now",
  rate_limited: "Too many requests; slow down.",
  too_large: "A message was too large for the server.",
  internal: "The server had an internal error; try again.",
  webrtc: "The browser could not set up the call",
};

function say(text, kind = "info") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

function errorText(code, message) {
  const known = ERRORS[code];
  if (!known) return `${code}: ${message}`;
  return known.endsWith(".") ? known : `${known} (${message}).`;
}

function setServerState(state, text) {
  $("server-state").dataset.state = state;
  $("server-state").textContent = text;
}

// ---- sign in ----

async function signIn(event) {
  event.preventDefault();
  const user = $("user").value.trim();
  if (!user) return say("Enter your name.", "error");
  $("connect").disabled = true;
  say("Connecting…");
  const client = new SignalingClient(wsUrl, { user });
  try {
    await client.connect();
  } catch (e) {
    $("connect").disabled = false;
    const err = e instanceof SignalingError ? e : new SignalingError("unreachable", e.message);
    return say(errorText(err.code, err.message), "error");
  }
  sig = client;
  localStorage.setItem("demo.user", user);
  wireSignaling();
  setServerState("open", `signed in as ${user}`);
  $("sign-in").hidden = true;
  $("phone").hidden = false;
  $("me").textContent = `You are ${user}. Others call you by that name.`;
  say("Signed in. Starting your camera…");
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    $("local").srcObject = localStream;
    say("Ready. Enter a name to call.");
  } catch (e) {
    $("local-box").hidden = true;
    say(`No camera or microphone (${e.name}); you can still call and receive.`, "error");
  }
}

function wireSignaling() {
  sig.addEventListener("invite", (e) => onInvite(e.detail));
  for (const type of ["ringing", "accepted", "candidate", "renegotiate", "ended"]) {
    sig.addEventListener(type, (e) => route(e.detail));
  }
  sig.addEventListener("error", (e) => {
    const msg = e.detail;
    if (msg.call_id) {
      const target = [call, incoming].find((c) => c && c.id === msg.call_id);
      // About a call that is already over (e.g. our last candidates crossed its `ended`):
      // nothing to tell the user.
      if (!target) return console.info(`after the call ended: ${msg.code}: ${msg.message}`);
      target.handle(msg);
    }
    say(errorText(msg.code, msg.message), "error");
  });
  sig.addEventListener("reconnecting", (e) => {
    setServerState("reconnecting", "reconnecting…");
    say(`Connection to the server lost; reconnecting (attempt ${e.detail.attempt})…`, "error");
  });
  sig.addEventListener("reconnected", (e) => {
    setServerState("open", `signed in as ${sig.user}`);
    if (e.detail.resumed) {
      say(call ? "Reconnected to the server; the session resumed and the call goes on." : "Reconnected to the server; the session resumed.");
    } else {
      say("Reconnected with a new session: the old session had expired, and its calls ended.", "error");
      if (call) call.sessionLost();
      if (incoming) incoming.sessionLost();
    }
  });
  sig.addEventListener("closed", (e) => {
    // Signed out for good (the server refused a resume, or the page is going away): end
    // what is left and show the sign-in form again.
    setServerState("closed", "signed out");
    if (call) call.sessionLost();
    if (incoming) incoming.sessionLost();
    sig = null;
    $("phone").hidden = true;
    $("sign-in").hidden = false;
    $("connect").disabled = false;
    for (const t of localStream?.getTracks() ?? []) t.stop();
    localStream = null;
    if (e.detail.code !== "closed") say(errorText(e.detail.code, e.detail.message), "error");
  });
}

function route(msg) {
  if (call && msg.call_id === call.id) call.handle(msg);
  else if (incoming && msg.call_id === incoming.id) incoming.handle(msg);
}

// ---- calls ----

function placeCall(event) {
  event.preventDefault();
  const to = $("callee").value.trim();
  if (!to) return say("Enter the name of who to call.", "error");
  if (!USER_NAME.test(to)) return say(ERRORS.invalid_user, "error");
  if (call) return say("Hang up first: one call at a time.", "error");
  const relayOnly = $("relay-only").checked;
  show(Call.place(sig, to, { stream: localStream, relayOnly }));
  say(`Calling ${to}…`);
}

function onInvite(invite) {
  // Already in a call: busy, unless it is the same person calling back at the same
  // moment (glare: the server keeps one of the two calls and ends the other).
  const glare = call && call.state === "ringing" && call.peer === invite.from;
  if ((call && !glare) || incoming) {
    sig.reject(invite.call_id, "busy");
    say(`${invite.from} called while you were busy; they were told you are busy.`);
    return;
  }
  const c = Call.incoming(sig, invite, { relayOnly: $("relay-only").checked });
  c.state0 = "ringing";
  c.addEventListener("ended", (e) => {
    if (incoming !== c) return; // accepted: show() reports the end
    say(endedText(c, e.detail), e.detail.local ? "info" : "error");
    dropIncoming();
  });
  incoming = c;
  $("incoming-text").textContent = `${invite.from} is calling you.`;
  $("incoming").hidden = false;
  say(`Incoming call from ${invite.from}.`);
}

function dropIncoming() {
  incoming = null;
  $("incoming").hidden = true;
}

async function acceptIncoming() {
  if (!incoming) return;
  const c = incoming;
  dropIncoming();
  if (call) call.hangup();
  show(c);
  await c.accept({ stream: localStream });
}

function declineIncoming() {
  if (incoming) incoming.reject("declined");
}

function endedText(c, { reason, local, detail }) {
  const text = ENDED[reason];
  return text ? text(c, local, detail) : `The call ended (${reason}).`;
}

function show(c) {
  call = c;
  c.state0 = c.state;
  $("peer-name").textContent = c.peer;
  $("remote").srcObject = c.remoteStream;
  $("remote-box").hidden = false;
  $("controls").hidden = false;
  $("chat-log").replaceChildren();
  $("path").dataset.path = "";
  $("path").textContent = "no media yet";
  $("stats").textContent = "";
  $("call").disabled = true;
  showCallState();
  c.addEventListener("state", () => {
    showCallState();
    if (c.state === "connected") say(`Connected with ${c.peer}.`);
    if (c.state === "reconnecting") say(`Media connection to ${c.peer} interrupted; reconnecting…`, "error");
    if (c.state !== "ended") c.state0 = c.state;
  });
  c.addEventListener("ringing", () => say(`Ringing ${c.peer}…`));
  c.addEventListener("chat", (e) => addChat(c.peer, e.detail.text, false));
  c.addEventListener("chat-open", () => ($("chat").hidden = false));
  c.addEventListener("channel", (e) => {
    if (e.detail.channel.readyState === "open" && e.detail.channel.label === "chat") $("chat").hidden = false;
  });
  c.addEventListener("error", (e) => say(errorText(e.detail.code, e.detail.message), "error"));
  c.addEventListener("ended", (e) => {
    const fine = e.detail.reason === "hangup" || (e.detail.local && e.detail.reason !== "failed");
    say(endedText(c, e.detail), fine ? "info" : "error");
    if (call === c) hide();
  });
  clearInterval(statsTimer);
  lastBytes = null;
  statsTimer = setInterval(showStats, 1000);
}

function hide() {
  call = null;
  clearInterval(statsTimer);
  $("remote").srcObject = null;
  $("remote-box").hidden = true;
  $("controls").hidden = true;
  $("chat").hidden = true;
  $("call").disabled = false;
  setMute(false);
  setCameraOff(false);
}

function showCallState() {
  const labels = { ringing: "ringing", connecting: "connecting…", connected: "connected", reconnecting: "reconnecting…", ended: "ended" };
  $("call-state").textContent = labels[call.state] ?? call.state;
  $("call-state").dataset.state = call.state;
}

async function showStats() {
  const c = call;
  if (!c || c.state === "ended") return;
  let s;
  try {
    s = await c.stats();
  } catch {
    return; // closed meanwhile
  }
  if (c !== call) return;
  if (s.path) {
    $("path").dataset.path = s.path;
    const over = s.relayProtocol ? ` over ${s.relayProtocol.toUpperCase()}` : "";
    $("path").textContent = `${s.path === "relay" ? "via relay" : "direct"} (${s.local}/${s.remote})${over}`;
  }
  const now = performance.now();
  let rate = "";
  if (lastBytes) {
    const secs = (now - lastBytes.at) / 1000;
    const kbps = (bytes) => Math.round((bytes * 8) / 1000 / secs);
    rate = ` · in ${kbps(s.bytesIn - lastBytes.in)} kbit/s · out ${kbps(s.bytesOut - lastBytes.out)} kbit/s`;
  }
  lastBytes = { at: now, in: s.bytesIn, out: s.bytesOut };
  const rtt = s.rttMs === null ? "–" : `${s.rttMs.toFixed(0)} ms`;
  $("stats").textContent = `RTT ${rtt}${rate} · packets lost ${s.packetsLost} · frames decoded ${s.framesDecoded}`;
}

// ---- in-call controls ----

function setMute(on) {
  for (const t of localStream?.getAudioTracks() ?? []) t.enabled = !on;
  $("mute").setAttribute("aria-pressed", String(on));
  $("mute").textContent = on ? "Unmute" : "Mute";
}

function setCameraOff(off) {
  for (const t of localStream?.getVideoTracks() ?? []) t.enabled = !off;
  $("camera").setAttribute("aria-pressed", String(off));
  $("camera").textContent = off ? "Camera on" : "Camera off";
}

function addChat(who, text, mine) {
  const li = document.createElement("li");
  li.textContent = `${who}: ${text}`;
  if (mine) li.className = "mine";
  $("chat-log").append(li);
  li.scrollIntoView({ block: "nearest" });
}

function sendChat(event) {
  event.preventDefault();
  const text = $("chat-input").value;
  if (!text || !call) return;
  if (call.sendChat(text)) {
    addChat("me", text, true);
    $("chat-input").value = "";
  } else {
    say("The chat is not open yet.", "error");
  }
}

// ---- start ----

$("ws-url").textContent = wsUrl;
$("user").value = params.get("user") || localStorage.getItem("demo.user") || "";
$("relay-only").checked = params.get("relay") === "1";
$("sign-in").addEventListener("submit", signIn);
$("dial").addEventListener("submit", placeCall);
$("accept").addEventListener("click", acceptIncoming);
$("decline").addEventListener("click", declineIncoming);
$("hangup").addEventListener("click", () => call && call.hangup());
$("mute").addEventListener("click", () => setMute($("mute").getAttribute("aria-pressed") !== "true"));
$("camera").addEventListener("click", () => setCameraOff($("camera").getAttribute("aria-pressed") !== "true"));
$("chat-form").addEventListener("submit", sendChat);
addEventListener("pagehide", () => sig && sig.close());

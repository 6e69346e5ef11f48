#!/usr/bin/env python3
"""A WebRTC peer built on aiortc, an implementation independent of webrtc-rs and Chromium,
for the interop tests (tests/aiortc.rs). It speaks the signaling protocol (docs/protocol.md)
to the real server over a WebSocket and behaves like the SDK's examples:

    aiortc_peer.py --server ws://127.0.0.1:8080/ws --user alice --to bob   # calls bob
    aiortc_peer.py --server ws://127.0.0.1:8080/ws --user bob              # answers a call

It sends a VP8 test pattern and an Opus tone (encoded by libvpx and libopus through PyAV),
decodes what the other side sends, chats over the data channel "chat" (lines on stdin go
out, messages come in as "<peer>: <text>"), and prints one status line a second:

    stats {"path": "host/host (192.0.2.2:5000 -> ...)", "video": {"decoders": ["video/VP8"],
           "frames": 41}, "audio": {"decoders": ["audio/opus"], "samples": 96000}}

"path" is the pair aiortc sends on (the candidate types, local/remote, and addresses).

aiortc gathers its candidates before it answers or offers and puts them in the SDP; it
does not trickle. Candidates trickled by the other side are added as they come.
Ctrl-C (SIGINT) hangs up. It exits 0 once the call ended by a hangup, non-zero on any
failure or when --deadline passes.
"""

import argparse
import asyncio
import fractions
import json
import logging
import math
import os
import signal
import sys
import threading

import websockets
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc import rtcrtpreceiver
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame

# The codecs aiortc decoded with: its receiver creates a decoder (libvpx, libopus through
# PyAV) for the codec of the packets that arrive; record which.
DECODERS = set()


def recording_get_decoder(codec, _create=rtcrtpreceiver.get_decoder):
    DECODERS.add(codec.mimeType)
    return _create(codec)


rtcrtpreceiver.get_decoder = recording_get_decoder

WIDTH, HEIGHT = 320, 240
SAMPLE_RATE = 48000


def say(line):
    print(line, flush=True)


class TestPattern(VideoStreamTrack):
    """A bright bar moving over a grey picture, 30 frames a second."""

    def __init__(self):
        super().__init__()
        self.planes = []
        for step in range(WIDTH // 8):
            row = bytearray([64] * WIDTH)
            row[step * 8 : step * 8 + 16] = bytes([235]) * len(row[step * 8 : step * 8 + 16])
            self.planes.append(bytes(row) * HEIGHT)
        self.index = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        luma, *chroma = frame.planes
        luma.update(self.planes[self.index % len(self.planes)])
        for plane in chroma:
            plane.update(bytes([128]) * plane.buffer_size)
        self.index += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(MediaStreamTrack):
    """A 440 Hz sine, 20 ms frames of 48 kHz mono, paced in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.samples = int(AUDIO_PTIME * SAMPLE_RATE)
        wave = [int(8000 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE)) for i in range(SAMPLE_RATE)]
        self.pcm = b"".join(v.to_bytes(2, "little", signed=True) for v in wave)
        self.pts = 0
        self.start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        else:
            self.pts += self.samples
            await asyncio.sleep(self.start + self.pts / SAMPLE_RATE - loop.time())
        frame = AudioFrame(format="s16", layout="mono", samples=self.samples)
        offset = self.pts % SAMPLE_RATE * 2  # one second of 440 Hz is whole cycles
        frame.planes[0].update(self.pcm[offset : offset + self.samples * 2])
        frame.sample_rate = SAMPLE_RATE
        frame.pts, frame.time_base = self.pts, fractions.Fraction(1, SAMPLE_RATE)
        return frame


def only(kind, mime):
    """The codec capabilities of `kind` with the mime type `mime` (plus none other)."""
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == mime]


def ice_servers(welcome):
    # Always a list, never None: with None aiortc would use a public STUN server.
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in welcome.get("ice_servers", [])
    ]


def to_aiortc(init):
    """An RTCIceCandidateInit from the wire as aiortc's RTCIceCandidate (None: not one)."""
    text = init.get("candidate", "")
    text = text[len("candidate:") :] if text.startswith("candidate:") else text
    if not text:
        return None
    candidate = candidate_from_sdp(text)
    candidate.sdpMid = init.get("sdpMid")
    candidate.sdpMLineIndex = init.get("sdpMLineIndex")
    return candidate


class Peer:
    """One call: the peer connection, what it decoded, the chat."""

    def __init__(self, ws, welcome, args):
        self.ws = ws
        self.me = args.user
        policy = RTCIceTransportPolicy.RELAY if args.relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=ice_servers(welcome), iceTransportPolicy=policy)
        )
        self.call_id = None
        self.peer = None
        self.remote_set = False
        self.pending = []
        self.chat = None
        self.video_frames = 0
        self.audio_samples = 0
        self.ended = asyncio.get_running_loop().create_future()
        self.pc.on("track", self.on_track)
        self.pc.on("datachannel", self.on_channel)
        self.pc.on("connectionstatechange", self.on_state)

    async def send(self, msg):
        await self.ws.send(json.dumps(msg))

    def add_media(self):
        """Our test pattern and tone, VP8 and Opus only (so the other side must send them)."""
        for track, kind, mime in ((Tone(), "audio", "audio/opus"), (TestPattern(), "video", "video/vp8")):
            sender = self.pc.addTrack(track)
            transceiver = next(t for t in self.pc.getTransceivers() if t.sender is sender)
            transceiver.setCodecPreferences(only(kind, mime))

    def on_track(self, track):
        say(f"receiving {track.kind} ({self.peer})")
        asyncio.ensure_future(self.decode(track))

    async def decode(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "video":
                self.video_frames += 1
            else:
                self.audio_samples += frame.samples

    def on_channel(self, channel):
        say(f"data channel '{channel.label}' opened by {self.peer}")
        self.use_chat(channel)

    def use_chat(self, channel):
        self.chat = channel
        channel.on("message", lambda m: say(f"{self.peer}: {m}"))
        if channel.readyState == "open":
            say("chat open")
        else:
            channel.on("open", lambda: say("chat open"))

    def on_state(self):
        say(f"connection: {self.pc.connectionState}")
        if self.pc.connectionState == "failed" and not self.ended.done():
            self.ended.set_exception(RuntimeError("the connection failed"))

    @staticmethod
    def decoders(kind):
        return sorted(m for m in DECODERS if m.startswith(kind + "/"))

    def path(self):
        """The nominated pair's candidate types, as "local/remote", or None."""
        sctp = self.pc.sctp
        pairs = sctp.transport.transport._connection._nominated if sctp else {}
        pair = pairs.get(1)
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        return (
            f"{local.type}/{remote.type} "
            f"({local.host}:{local.port} -> {remote.host}:{remote.port})"
        )

    def stats(self):
        return {
            "path": self.path(),
            "video": {"decoders": self.decoders("video"), "frames": self.video_frames},
            "audio": {"decoders": self.decoders("audio"), "samples": self.audio_samples},
        }

    def local_candidates(self):
        sdp = self.pc.localDescription.sdp
        return [l[len("a=candidate:") :] for l in sdp.splitlines() if l.startswith("a=candidate:")]

    async def call(self, to):
        self.peer = to
        self.call_id = "aiortc-1"
        self.add_media()
        self.use_chat(self.pc.createDataChannel("chat"))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        say(f"calling {to} with {len(self.local_candidates())} candidates in the offer")
        for c in self.local_candidates():
            say(f"local candidate: {c}")
        await self.send(
            {"type": "invite", "call_id": self.call_id, "to": to, "offer": self.pc.localDescription.sdp,
             "meta": {"app": "aiortc interop peer"}}
        )

    async def answer(self, invite):
        self.peer = invite["from"]
        self.call_id = invite["call_id"]
        say(f"{self.peer} calls; answering")
        await self.pc.setRemoteDescription(RTCSessionDescription(invite["offer"], "offer"))
        await self.remote_description_set()
        self.add_media()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        say(f"answering with {len(self.local_candidates())} candidates in the answer")
        await self.send({"type": "accept", "call_id": self.call_id, "answer": self.pc.localDescription.sdp})

    async def remote_description_set(self):
        self.remote_set = True
        for init in self.pending:
            await self.add_candidate(init)
        self.pending.clear()

    async def add_candidate(self, init):
        if not self.remote_set:
            self.pending.append(init)
            return
        candidate = to_aiortc(init) if init is not None else None
        if init is not None and candidate is None:
            return
        say(f"remote candidate: {init['candidate'] if init else 'end'}")
        await self.pc.addIceCandidate(candidate)

    async def on_message(self, msg):
        kind = msg.get("type")
        if kind == "invite" and self.call_id is None:
            await self.answer(msg)
        elif kind == "invite":
            await self.send({"type": "reject", "call_id": msg["call_id"], "reason": "busy"})
        elif msg.get("call_id") not in (None, self.call_id):
            return
        elif kind == "ringing":
            say(f"{self.peer} is ringing")
        elif kind == "accepted":
            await self.pc.setRemoteDescription(RTCSessionDescription(msg["answer"], "answer"))
            await self.remote_description_set()
            say(f"{self.peer} answered")
        elif kind == "candidate":
            await self.add_candidate(msg["candidate"])
        elif kind == "ended":
            say(f"call ended: {msg['reason']}")
            if not self.ended.done():
                self.ended.set_result(msg["reason"])
        elif kind == "error":
            raise RuntimeError(f"server error: {msg}")

    async def hangup(self):
        if self.call_id is not None:
            await self.send({"type": "hangup", "call_id": self.call_id})
        if not self.ended.done():
            self.ended.set_result("hangup")


def stdin_lines(loop, queue):
    """Stdin, line by line, on a thread of its own (the chat's input)."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))


async def chat_from_stdin(peer, queue):
    while True:
        line = await queue.get()
        if peer.chat is not None and peer.chat.readyState == "open":
            peer.chat.send(line)
        else:
            say(f"chat not open; dropped: {line}")


async def read_signals(peer):
    """Applies what the server sends; a failure here ends the call with it."""
    try:
        async for raw in peer.ws:
            await peer.on_message(json.loads(raw))
        raise RuntimeError("the signaling connection closed")
    except Exception as e:  # noqa: BLE001 -- handed to run() through `ended`
        if not peer.ended.done():
            peer.ended.set_exception(e)


async def heartbeat(peer, every):
    while True:
        await asyncio.sleep(every)
        await peer.send({"type": "ping"})


async def status(peer):
    while True:
        await asyncio.sleep(1)
        say("stats " + json.dumps(peer.stats()))


async def run(args):
    loop = asyncio.get_running_loop()
    async with websockets.connect(args.server) as ws:
        await ws.send(json.dumps({"type": "hello", "version": 1, "user": args.user}))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"no welcome: {welcome}")
        peer = Peer(ws, welcome, args)
        say(f"signed in as {args.user}; " + (f"calling {args.to}" if args.to else "waiting for calls"))
        lines = asyncio.Queue()
        threading.Thread(target=stdin_lines, args=(loop, lines), daemon=True).start()
        loop.add_signal_handler(signal.SIGINT, lambda: asyncio.ensure_future(peer.hangup()))
        tasks = [
            asyncio.ensure_future(read_signals(peer)),
            asyncio.ensure_future(heartbeat(peer, welcome.get("heartbeat_s", 20) / 2)),
            asyncio.ensure_future(status(peer)),
            asyncio.ensure_future(chat_from_stdin(peer, lines)),
        ]
        try:
            if args.to:
                await peer.call(args.to)
            reason = await peer.ended
        finally:
            say("stats " + json.dumps(peer.stats()))
            for task in tasks:
                task.cancel()
            await peer.pc.close()
        return reason


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the signaling server's WebSocket URL")
    parser.add_argument("--user", required=True, help="who this peer is")
    parser.add_argument("--to", help="who to call; without it, answer one call")
    parser.add_argument("--relay-only", action="store_true", help="relay candidates only")
    parser.add_argument("--deadline", type=float, default=120, help="give up after this many seconds")
    args = parser.parse_args()
    if os.environ.get("AIORTC_PEER_LOG"):
        # e.g. AIORTC_PEER_LOG=aioice: that library's log on stderr (its ICE checks).
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        for name in os.environ["AIORTC_PEER_LOG"].split(","):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        reason = asyncio.run(asyncio.wait_for(run(args), args.deadline))
    except asyncio.TimeoutError:
        print(f"aiortc peer: gave up after {args.deadline} s", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 -- any failure is the test's to report
        print(f"aiortc peer: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if reason == "hangup" else 3)


if __name__ == "__main__":
    main()

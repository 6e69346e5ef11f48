#!/usr/bin/env python3
"""Issue 16, item 2: memory of the signaling server when a user's detached, ringing sessions are
sent 24 MB of candidates (the attack that grew it by 460 MiB). docs/security.md.

Usage: target/interop-venv/bin/python scripts/queue-memory.py ws://127.0.0.1:8080/ws <server pid> [sessions]
(the interop venv has `websockets`: bash interop-tests/setup-venv). Loopback only; 400 messages,
paced under the default 50/s."""
import asyncio, json, sys, subprocess, time, os, re
import websockets
URL = sys.argv[1]; PID = int(sys.argv[2]); SESSIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 16
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{PID}/status").read()).group(1))  # KiB
async def join(user):
    ws = await websockets.connect(URL, max_size=None)
    await ws.send(json.dumps({"type":"hello","version":1,"user":user}))
    json.loads(await ws.recv())
    return ws
async def main():
    base = rss()
    alice = await join("alice")
    bobs = [await join("bob") for _ in range(SESSIONS)]
    await alice.send(json.dumps({"type":"invite","call_id":"c1","to":"bob","offer":"v=0"}))
    for b in bobs: await b.recv()
    for b in bobs: b.transport.abort()
    await asyncio.sleep(0.5)
    payload = "x" * (60 * 1024)
    sent = 0; ended = None; peak = base
    msg = json.dumps({"type":"candidate","call_id":"c1","candidate":{"candidate":payload,"sdp_mid":"0","sdp_m_line_index":0}})
    for i in range(400):
        await alice.send(msg); sent += len(msg)
        if i % 10 == 0:
            await asyncio.sleep(0.25)  # under the default 50/s, burst 200
            peak = max(peak, rss())
        try:
            while True:
                m = json.loads(await asyncio.wait_for(alice.recv(), 0.001))
                if m["type"] == "ended" and ended is None: ended = (i + 1, m["reason"])
        except asyncio.TimeoutError:
            pass
    await asyncio.sleep(1)
    peak = max(peak, rss())
    print(f"sent {sent/1e6:.1f} MB to {SESSIONS} detached sessions; ended: {ended}; RSS {base/1024:.1f} MiB -> peak {peak/1024:.1f} MiB (+{(peak-base)/1024:.1f} MiB), after {rss()/1024:.1f} MiB")
asyncio.run(main())

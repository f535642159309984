"""Hostile HTTP/2 and HTTP/1.1 (REST) peers against the real gateway: each case attacks one connection while a well-behaved
grpcio client keeps calling ModelInfer on the demo model, and checks three things: the bad connection is
closed or throttled with the expected GOAWAY / RST_STREAM / grpc-status code, the gateway's RSS stays
bounded (sampled from /proc/PID/status before, during and after), and the good client sees no error and a
bounded latency.

    pytest -q Tests/EndToEnd/test_hostile_peers.py            # the CI version, well under 90 s
    python Tests/EndToEnd/test_hostile_peers.py --report      # the same cases, a Markdown table of figures
    SWITCHYARD_HOSTILE_SCALE=20 python Tests/EndToEnd/test_hostile_peers.py --report   # longer attacks
    SWITCHYARD_HOSTILE_CASES=gzip_bombs,unbudgeted_frames python Tests/EndToEnd/test_hostile_peers.py --report
    SWITCHYARD_HOSTILE_SEPARATE_CPUS=1 python Tests/EndToEnd/test_hostile_peers.py --report docs/hardening-results.md --runs 3

Every attack loop is bounded by a frame count and a wall-clock budget; with a scale of N each case runs its
attack N times against the same gateway (and the flood loops may send N times as much), so retained memory
shows up in "RSS after"."""

import collections
import contextlib
import os
import pathlib
import resource
import select
import socket
import struct
import sys
import tempfile
import time

import grpc
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from conftest import MODELS, Gateway, free_ports  # noqa: E402
from faults_support import copy_digits
from hostile import (  # noqa: E402
    ACK,
    CANCEL,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    ERROR_NAMES,
    FLOW_CONTROL_ERROR,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawPeer,
    RSSSampler,
    WellBehavedClient,
    frame,
    grpc_message,
    model_infer_request,
    request_headers,
    rss_kib,
    settings,
)
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

SCALE = max(1, int(os.environ.get("SWITCHYARD_HOSTILE_SCALE", "1")))

# Short timeouts so that the timeout cases finish in seconds; every other limit keeps its default except
# the output buffer, lowered so that a slow reader reaches it with a few hundred responses.
HANDSHAKE_TIMEOUT = 2
IDLE_TIMEOUT = 3
STALL_TIMEOUT = 2
CONFIG = f"""
limits:
  handshake_timeout_seconds: {HANDSHAKE_TIMEOUT}
  idle_timeout_seconds: {IDLE_TIMEOUT}
  write_stall_timeout_seconds: {STALL_TIMEOUT}
  max_output_buffer_bytes: 262144
"""

# What the well-behaved client must see during any attack.
MAX_GOOD_P99_SECONDS = 1.0
# How much the gateway's RSS may grow during / after one attack (MiB).
MAX_RSS_GROWTH_MIB = 256
MAX_RSS_RETAINED_MIB = 128
# How long the well-behaved client calls before RSS is first read: the gateway's worker threads and the client's
# connection settle their memory in the first calls (about 3 % of RSS over the first second).
WARM_UP_SECONDS = 1.0
# How long after an attack RSS may take to come back within 5 % of its start before "RSS after" is read anyway.
RSS_SETTLE_SECONDS = 2.0
# SWITCHYARD_HOSTILE_SEPARATE_CPUS=1 runs the attack on CPU 0 and the gateway with the well-behaved client on the
# other CPUs, as when the attacker is another machine: on a 2-core box a flood written in Python otherwise takes a
# whole core from the processes it is measuring, and the client's latency shows the attacker's CPU, not the
# gateway's defence.
SEPARATE_CPUS = os.environ.get("SWITCHYARD_HOSTILE_SEPARATE_CPUS") == "1" and len(os.sched_getaffinity(0)) >= 2


@contextlib.contextmanager
def gateway(extra_config=""):
    directory = pathlib.Path(tempfile.mkdtemp(prefix="hostile-"))
    config = directory / "switchyard.yaml"
    config.write_text(CONFIG + extra_config)
    port, admin, rest = free_ports(3)
    gw = Gateway(
        ["--config", str(config), "--model-repository", str(MODELS), "--listen", f"127.0.0.1:{port}",
         "--rest-listen", f"127.0.0.1:{rest}", "--admin-listen", f"127.0.0.1:{admin}"],
        port, str(directory / "gateway.log"), admin,
    )
    gw.rest_port = rest
    try:
        yield gw.wait_listening()
    finally:
        gw.stop()


class Outcome:
    """What one case measured."""

    def __init__(self, name):
        self.name = name
        self.verdict = ""
        self.rss_before = self.rss_peak = self.rss_after = 0
        self.settle_seconds = 0.0
        self.good_calls = 0
        self.good_errors = []
        self.good_p50 = self.good_p99 = 0.0
        self.seconds = 0.0


@contextlib.contextmanager
def served_cpus():
    """With SEPARATE_CPUS, the gateway and the well-behaved client started inside inherit every CPU but the
    first."""
    if not SEPARATE_CPUS:
        yield
        return
    everything = os.sched_getaffinity(0)
    os.sched_setaffinity(0, everything - {min(everything)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, everything)


@contextlib.contextmanager
def attacker_cpus():
    """With SEPARATE_CPUS, the attack (this process) runs on the first CPU only."""
    if not SEPARATE_CPUS:
        yield
        return
    served = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(served | {0})})
    try:
        yield
    finally:
        os.sched_setaffinity(0, served)


def warm_up(gw):
    """Calls each version with the largest request an attack sends (64 rows), a few times, before the RSS baseline is
    read: the engine and the buffers it reuses grow once to the largest batch they have run (about 4 MiB here), and
    that first use is steady state, not memory an attack left behind."""
    request = service_pb2.ModelInferRequest.FromString(model_infer_request(rows=64, version="1"))
    with grpc.insecure_channel(gw.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for version in ("1", "2"):
            request.model_version = version
            for _ in range(20):
                stub.ModelInfer(request, timeout=10)


def steady_rss(pid, quiet_seconds=0.5, limit_seconds=5.0):
    """The gateway's RSS once the well-behaved client's calls stop growing it (no change over `quiet_seconds`, read for
    at most `limit_seconds`): the baseline an attack's growth and what it leaves behind are measured against."""
    deadline = time.monotonic() + limit_seconds
    last, since = rss_kib(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = rss_kib(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            break
    return last


def run_case(name, attack, extra_config=""):
    """Starts a gateway, runs `attack(gw) -> verdict` beside a well-behaved client and an RSS sampler, and
    checks the client and the RSS."""
    outcome = Outcome(name)
    with served_cpus(), gateway(extra_config) as gw:
        pid = gw.process.pid
        warm_up(gw)
        with WellBehavedClient(gw.address) as good, attacker_cpus():
            time.sleep(WARM_UP_SECONDS)
            outcome.rss_before = steady_rss(pid)
            started = time.monotonic()
            with RSSSampler(pid) as sampler:
                for _ in range(SCALE):  # the long version repeats the attack on fresh connections
                    outcome.verdict = attack(gw)
                time.sleep(0.3)  # the good client keeps going just after the attack, too
            outcome.seconds = time.monotonic() - started
        outcome.rss_peak = max(sampler.peak, outcome.rss_before)
        time.sleep(0.3)
        # The gateway hands freed memory back to the system at most once a second (a malloc_trim from its event
        # loop), so RSS is read until it is back within 5 % of its start, for up to RSS_SETTLE_SECONDS.
        settle_from = time.monotonic()
        outcome.rss_after = rss_kib(pid)
        while outcome.rss_after > outcome.rss_before * 1.05 and time.monotonic() - settle_from < RSS_SETTLE_SECONDS:
            time.sleep(0.1)
            outcome.rss_after = rss_kib(pid)
        outcome.settle_seconds = 0.6 + time.monotonic() - settle_from
        outcome.good_calls = good.calls
        outcome.good_errors = good.errors
        outcome.good_p50 = good.quantile(0.5)
        outcome.good_p99 = good.quantile(0.99)
        assert gw.process.poll() is None, f"gateway died during {name}:\n{gw.output()}"
    assert outcome.good_calls > 0, f"{name}: the well-behaved client made no call"
    assert not outcome.good_errors, f"{name}: the well-behaved client saw errors: {outcome.good_errors[:5]}"
    assert outcome.good_p99 < MAX_GOOD_P99_SECONDS, f"{name}: good client p99 {outcome.good_p99:.3f} s"
    growth = (outcome.rss_peak - outcome.rss_before) / 1024
    retained = (outcome.rss_after - outcome.rss_before) / 1024
    assert growth < MAX_RSS_GROWTH_MIB, f"{name}: RSS grew by {growth:.0f} MiB during the attack"
    assert retained < MAX_RSS_RETAINED_MIB, f"{name}: RSS stayed {retained:.0f} MiB above its start"
    return outcome


def name(code):
    return ERROR_NAMES.get(code, str(code))


def expect_goaway(peer, code, within=5.0):
    closed = peer.wait_closed(within)
    assert peer.goaway is not None, f"expected GOAWAY {name(code)}, got {peer.describe()}"
    assert peer.goaway_code == code, f"expected GOAWAY {name(code)}, got {peer.describe()}"
    assert closed, f"the server sent GOAWAY but kept the connection open: {peer.describe()}"


def hpack_int(value, prefix_bits, flags):
    """An HPACK integer with an N-bit prefix (RFC 7541 §5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name_, value, indexing=False):
    """A literal header field with a literal name, with or without incremental indexing."""
    name_b, value_b = name_.encode(), value.encode()
    head = b"\x40" if indexing else b"\x00"
    return head + hpack_int(len(name_b), 7, 0) + name_b + hpack_int(len(value_b), 7, 0) + value_b


def plain_request_block(path="/inference.GRPCInferenceService/ModelInfer"):
    return b"".join(literal(k, v) for k, v in request_headers(path))


# ------------------------------------------------------------------------------------------------------
# The attacks. Each returns a one-line verdict for the report and asserts what the gateway did.


def attack_rapid_reset(gw):
    """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL), as fast as the socket takes them."""
    peer = RawPeer(gw.port)
    block = peer.header_block(request_headers())
    sent = 0
    deadline = time.monotonic() + 3 * SCALE
    while sent < 100_000 * SCALE and time.monotonic() < deadline and peer.goaway is None:
        batch = []
        for _ in range(100):
            stream = peer.new_stream()
            batch.append(frame(HEADERS, END_HEADERS, stream, block))
            batch.append(frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))
        if not peer.send(b"".join(batch)):
            break
        sent += 100
    expect_goaway(peer, ENHANCE_YOUR_CALM)
    assert "reset" in peer.goaway[2], peer.describe()
    return f"GOAWAY {name(peer.goaway_code)} after {peer.goaway[0] // 2 + 1} streams ({sent} sent)"


def attack_made_you_reset(gw):
    """Requests malformed on purpose (no :path) so that the server has to reset each stream itself: the
    server-side twin of rapid reset ("MadeYouReset"). Server-sent stream errors share the reset budget."""
    peer = RawPeer(gw.port)
    block = peer.header_block([h for h in request_headers() if h[0] != ":path"])
    sent = 0
    deadline = time.monotonic() + 3 * SCALE
    while sent < 100_000 * SCALE and time.monotonic() < deadline and peer.goaway is None:
        if not peer.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, peer.new_stream(), block)
                                  for _ in range(100))):
            break
        sent += 100
        # Until its RST_STREAM is out, a reset stream still counts against max_concurrent_streams (and
        # exceeding that is a connection error of its own): let the resets catch up.
        peer.wait_for(lambda sent=sent: peer.goaway is not None or sum(peer.resets.values()) >= sent - 100, 2)
    expect_goaway(peer, ENHANCE_YOUR_CALM)
    # PROTOCOL_ERROR for the malformed ones, REFUSED_STREAM for those over max_concurrent_streams while the
    # resets were still queued: both are resets the peer provoked, and both spend the budget.
    assert peer.resets[PROTOCOL_ERROR] > 0 and sum(peer.resets.values()) >= 1000, peer.describe()
    assert "reset" in peer.goaway[2], peer.describe()
    resets = ", ".join(f"{v} {name(k)}" for k, v in peer.resets.items())
    return f"RST_STREAM {resets}, then GOAWAY {name(peer.goaway_code)} ({sent} sent)"


def attack_continuation_flood(gw):
    """HEADERS without END_HEADERS followed by an endless run of CONTINUATION frames."""
    peer = RawPeer(gw.port)
    block = plain_request_block()
    peer.send(frame(HEADERS, 0, 1, block))
    filler = literal("x-filler", "a" * 100)
    sent = 0
    while sent < 20_000 * SCALE and not peer.send_failed and peer.goaway is None:
        peer.send(b"".join(frame(CONTINUATION, 0, 1, filler) for _ in range(100)))
        sent += 100
    expect_goaway(peer, ENHANCE_YOUR_CALM)
    return f"GOAWAY {name(peer.goaway_code)} (the client had sent {sent} CONTINUATION frames when it saw it)"


def attack_huge_header_list(gw):
    """A 40 KiB header list (HEADERS + 2 CONTINUATION), refused on its stream with RESOURCE_EXHAUSTED, and
    then HPACK bombs: one 4 KiB entry put in the dynamic table, referenced 8000 times by one-byte indexes
    (32 MiB decoded from 8 KiB on the wire). Decoding stops at 4 x max_header_list_bytes and the stream is
    reset with ENHANCE_YOUR_CALM; the connection stays usable."""
    peer = RawPeer(gw.port)
    block = plain_request_block() + b"".join(literal(f"x-big-{i}", "b" * 4000) for i in range(10))
    chunks = [block[i:i + 16000] for i in range(0, len(block), 16000)]
    wire = frame(HEADERS, END_STREAM if len(chunks) == 1 else END_STREAM, 1, chunks[0])
    for index, chunk in enumerate(chunks[1:], start=1):
        wire += frame(CONTINUATION, END_HEADERS if index == len(chunks) - 1 else 0, 1, chunk)
    peer.send(wire)
    # The bomb: stream 3 inserts the entry (and is itself a normal, small request); streams 5… reference it.
    insert = plain_request_block() + literal("x-bomb", "c" * 4000, indexing=True)
    body = grpc_message(model_infer_request())
    peer.send(frame(HEADERS, END_HEADERS, 3, insert) + frame(DATA, END_STREAM, 3, body))
    streams = []
    for stream in range(5, 5 + 2 * 50 * SCALE, 2):
        peer.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, plain_request_block() + b"\xbe" * 8000))
        streams.append(stream)
    last = streams[-1] + 2
    peer.send(frame(HEADERS, END_HEADERS, last, plain_request_block()) + frame(DATA, END_STREAM, last, body))
    assert peer.wait_for(lambda: last in peer.statuses, 10), peer.describe()
    assert peer.statuses[1][0] == 8, f"40 KiB header list: {peer.statuses.get(1)}"
    assert peer.statuses[3][0] == 0, f"the request that only indexed one header: {peer.statuses.get(3)}"
    assert peer.resets[ENHANCE_YOUR_CALM] == len(streams), f"HPACK bomb streams: {peer.describe()}"
    assert not any(s in peer.statuses for s in streams), peer.statuses
    assert peer.statuses[last][0] == 0, f"a normal call after the bombs: {peer.statuses[last]}"
    assert peer.goaway is None, peer.describe()
    # A dynamic table size update above SETTINGS_HEADER_TABLE_SIZE (4096) is a compression error.
    peer2 = RawPeer(gw.port)
    peer2.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack_int(1 << 20, 5, 0x20) + plain_request_block()))
    expect_goaway(peer2, COMPRESSION_ERROR)
    peer.close()
    return (f"40 KiB list: grpc-status 8 (RESOURCE_EXHAUSTED); {len(streams)} HPACK bombs: RST_STREAM "
            f"ENHANCE_YOUR_CALM each, connection kept; oversized table update: GOAWAY {name(peer2.goaway_code)}")


def attack_settings_flood(gw):
    """SETTINGS frames in a tight loop (each one obliges an ACK), reading the ACKs."""
    peer = RawPeer(gw.port)
    one = settings(max_concurrent_streams=100)
    sent = 0
    while sent < 200_000 * SCALE and not peer.send_failed and peer.goaway is None:
        peer.send(one * 500)
        sent += 500
    expect_goaway(peer, ENHANCE_YOUR_CALM)
    return f"GOAWAY {name(peer.goaway_code)}; {peer.frames[SETTINGS]} SETTINGS frames answered of {sent} sent"


def attack_ping_flood(gw):
    """PING frames in a tight loop, once reading the ACKs and once never reading them."""
    peer = RawPeer(gw.port)
    ping = frame(PING, 0, 0, b"12345678")
    sent = 0
    while sent < 200_000 * SCALE and not peer.send_failed and peer.goaway is None:
        peer.send(ping * 500)
        sent += 500
    expect_goaway(peer, ENHANCE_YOUR_CALM)
    answered = peer.frames[PING]
    deaf = RawPeer(gw.port, read=False, rcvbuf=4096)
    deaf_sent = 0
    while deaf_sent < 200_000 * SCALE and deaf.send(ping * 500):
        deaf_sent += 500
    assert deaf.wait_closed(STALL_TIMEOUT + 3), "a PING flooder that never reads was not disconnected"
    return f"GOAWAY {name(peer.goaway_code)} after {answered} PING ACKs; non-reading flooder closed"


def attack_window_update_overflow(gw):
    """WINDOW_UPDATE pushing a window past 2^31-1: on the connection, then on a stream."""
    peer = RawPeer(gw.port)
    peer.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)))
    expect_goaway(peer, FLOW_CONTROL_ERROR)
    peer2 = RawPeer(gw.port)
    peer2.send(frame(HEADERS, END_HEADERS, 1, peer2.header_block(request_headers())))
    peer2.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x7FFFFFFF)))
    expect_goaway(peer2, FLOW_CONTROL_ERROR)
    return (f"connection window: GOAWAY {name(peer.goaway_code)}; stream window: RST_STREAM "
            f"{dict((name(k), v) for k, v in peer2.resets.items())} and GOAWAY {name(peer2.goaway_code)}")


def request_frames(stream, block, body):
    """HEADERS and the body in DATA frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE)."""
    wire = [frame(HEADERS, END_HEADERS, stream, block)]
    chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)]
    for index, chunk in enumerate(chunks):
        wire.append(frame(DATA, END_STREAM if index == len(chunks) - 1 else 0, stream, chunk))
    return b"".join(wire)


def attack_slow_reader(gw):
    """A client asking for many 64-row responses while granting no flow-control window (so they pile up in
    the gateway), and one that never reads its socket at all. They call version 1 while the well-behaved client
    calls the default version 2: what this case tests is responses piling up, not two clients sharing one model's
    queue (admission is per model: see SECURITY.md), which on a busy machine would shed the good client's calls."""
    body = grpc_message(model_infer_request(rows=64, version="1"))
    peer = RawPeer(gw.port, initial_settings={"initial_window_size": 0})
    block = peer.header_block(request_headers())
    sent = 0
    deadline = time.monotonic() + STALL_TIMEOUT + 4
    while sent < 5000 * SCALE and time.monotonic() < deadline and peer.goaway is None and not peer.send_failed:
        # 400 calls/s of 64 rows: well within the model's capacity, so what piles up is responses, not work.
        for _ in range(10):
            stream = peer.new_stream()
            peer.send(request_frames(stream, block, body))
            sent += 1
        time.sleep(0.025)
    expect_goaway(peer, ENHANCE_YOUR_CALM, within=STALL_TIMEOUT + 3)
    refused = sum(1 for status, _ in peer.statuses.values() if status == 8)
    assert refused > 0, f"no request was refused while {sent} responses waited: {peer.describe()}"

    deaf = RawPeer(gw.port, read=False, rcvbuf=4096)
    deaf_block = deaf.header_block(request_headers())
    deaf_sent = 0
    started = time.monotonic()
    while deaf_sent < 5000 * SCALE and time.monotonic() - started < STALL_TIMEOUT + 4:
        stream = deaf.new_stream()
        if not deaf.send(request_frames(stream, deaf_block, body)):
            break
        deaf_sent += 1
        if deaf_sent % 10 == 0:
            time.sleep(0.025)
    assert deaf.wait_closed(STALL_TIMEOUT + 3), "a client that never reads was not disconnected"
    return (f"zero window: {refused} of {sent} calls refused with RESOURCE_EXHAUSTED, then GOAWAY "
            f"{name(peer.goaway_code)}; non-reading client closed after {deaf_sent} requests")


def read_goaway(sock, timeout):
    """Reads a socket to its end (or `timeout`) and returns the GOAWAY error code it carried, if any."""
    sock.setblocking(False)
    data = b""
    deadline = time.monotonic() + timeout
    poller = select.poll()  # select() cannot watch descriptors above 1023
    poller.register(sock, select.POLLIN)
    while time.monotonic() < deadline:
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BlockingIOError):
            break
        if not chunk:
            break
        data += chunk
    offset = 0
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset:offset + 3], "big")
        if data[offset + 3] == GOAWAY and offset + 9 + 8 <= len(data):
            return struct.unpack(">I", data[offset + 13:offset + 17])[0]
        offset += 9 + length
    return None


def attack_slowloris(gw):
    """Connections that send nothing, and connections that send the preface one byte every 100 ms."""
    silent = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(100)]
    dribblers = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(20)]
    started = time.monotonic()
    wire = PREFACE + settings()
    position = 0
    alive = list(dribblers)
    while time.monotonic() - started < HANDSHAKE_TIMEOUT + 2 and alive and position < len(wire):
        for sock in list(alive):
            try:
                sock.send(wire[position:position + 1])
            except OSError:
                alive.remove(sock)
        position += 1
        time.sleep(0.1)
    deadline = started + HANDSHAKE_TIMEOUT + 3
    codes = [read_goaway(s, deadline - time.monotonic()) for s in silent + dribblers]
    elapsed = time.monotonic() - started
    for s in silent + dribblers:
        s.close()
    assert codes == [NO_ERROR] * len(codes), f"GOAWAY codes: {sorted(set(map(str, codes)))}"
    assert elapsed < HANDSHAKE_TIMEOUT + 3, f"slow connections closed only after {elapsed:.1f} s"
    return (f"{len(silent)} silent and {len(dribblers)} byte-by-byte connections: GOAWAY NO_ERROR and closed "
            f"after the {HANDSHAKE_TIMEOUT} s handshake timeout")


def idle_connection_count():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2000 * min(SCALE, 4)
    if soft < wanted + 200 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted + 400), hard))
        soft = min(hard, wanted + 400)
    return max(0, min(wanted, soft - 200))


def attack_idle_connections(gw):
    """Thousands of connections that complete the preface and then do nothing."""
    count = idle_connection_count()
    sockets = []
    hello = PREFACE + settings()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", gw.port))
        sock.sendall(hello)
        sockets.append(sock)
    opened = time.monotonic()
    during = rss_kib(gw.process.pid)
    codes = [read_goaway(s, IDLE_TIMEOUT + 3 - (time.monotonic() - opened)) for s in sockets]
    for s in sockets:
        s.close()
    closed = sum(1 for c in codes if c == NO_ERROR)
    assert closed == count, f"{count - closed} of {count} idle connections not closed with GOAWAY NO_ERROR"
    return f"{count} idle connections (RSS {during // 1024} MiB while open): all GOAWAY NO_ERROR after {IDLE_TIMEOUT} s"


def attack_huge_message_prefix(gw):
    """A 5-byte gRPC prefix announcing 4 GiB, then streams that each announce 60 MiB and send only part."""
    peer = RawPeer(gw.port)
    block = peer.header_block(request_headers())
    peer.send(frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, 0, 1, grpc_message(b"x" * 100, 0xFFFFFFFF)))
    assert peer.wait_for(lambda: 1 in peer.statuses, 5), peer.describe()
    status, message = peer.statuses[1]
    assert status == 8 and "max_request_bytes" in message, (status, message)
    # Partial messages: 6 connections x 16 streams, each announcing 16 MiB and sending 900 KB of it (within
    # every flow-control window, so only the buffer budget can refuse them). The case's configuration allows
    # 128 MiB of partial messages: 8 fit, the rest get RESOURCE_EXHAUSTED.
    peers = [RawPeer(gw.port) for _ in range(6)]
    chunk = b"\0" * 15000
    for p in peers:
        b = p.header_block(request_headers())
        for _ in range(16):
            stream = p.new_stream()
            p.send(frame(HEADERS, END_HEADERS, stream, b) + frame(DATA, 0, stream, grpc_message(b"", 16 << 20)))
            p.send(b"".join(frame(DATA, 0, stream, chunk) for _ in range(60)))
    expected = 6 * 16 - 8
    counted = lambda: sum(1 for p in peers for s, _ in p.statuses.values() if s == 8)  # noqa: E731
    peers[0].wait_for(lambda: counted() >= expected, 5)
    refused = counted()
    goaways = [p.describe() for p in peers if p.goaway is not None]
    for p in peers + [peer]:
        p.close()
    assert not goaways, goaways
    assert refused == expected, f"{refused} partial messages refused, expected {expected}"
    return (f"4 GiB prefix: grpc-status 8 ({message!r}); 96 partial 16 MiB messages: {refused} refused with "
            "grpc-status 8 (max_buffered_request_bytes 128 MiB), connections kept")


# ------------------------------------------------------------------------------------------------------
# Round two: what an independent attack found (SECURITY.md, "Round two").

HEADER_TIMEOUT = 2
ADMIN_IDLE_TIMEOUT = 2


def infer_request(model="digits", version="", input_name="pixels") -> bytes:
    request = service_pb2.ModelInferRequest(model_name=model, model_version=version)
    request.inputs.add(name=input_name, datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(b"\0" * 256)
    return request.SerializeToString()


def loop_cpu_seconds(pid):
    """CPU time (user + system) of the gateway's first event loop thread, from /proc."""
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "switchyard-io-0":
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    raise AssertionError("no switchyard-io-0 thread")


def attack_long_echoed_names(gw):
    """Requests naming a model, version or input far larger than a header block may be (a 100 000-character
    model name, 24 000 'é' that percent-encode to 144 KB, a 100 000-character version and input name), and a
    500 'é' model name within the name limit whose percent-encoded echo (6 KB) must be truncated, 6 connections x
    40 streams (x SCALE): every stream must get a status with a bounded message (the long names are refused by
    length before any lookup), and the memory must come back once the connections close."""
    pid = gw.process.pid
    before = rss_kib(pid)
    bodies = [
        ("model_name", grpc_message(infer_request(model="m" * 100_000)), 3),
        ("model_name (é)", grpc_message(infer_request(model="é" * 24_000)), 3),
        ("model_version", grpc_message(infer_request(version="9" * 100_000)), 3),
        ("input name", grpc_message(infer_request(input_name="i" * 100_000)), 3),
        ("model_name (500 é)", grpc_message(infer_request(model="é" * 500)), 5),
    ]
    peers = [RawPeer(gw.port) for _ in range(6)]
    expected = {}
    for index, p in enumerate(peers):
        block = p.header_block(request_headers())
        for n in range(40 * SCALE):
            label, body, code = bodies[(index + n) % len(bodies)]
            stream = p.new_stream()
            p.send(request_frames(stream, block, body))
            expected[(index, stream)] = (label, code)
    answered = lambda: sum(len(p.statuses) for p in peers)  # noqa: E731
    peers[0].wait_for(lambda: answered() >= len(expected), 20)
    unanswered = [(i, s, expected[(i, s)][0]) for (i, s) in expected if s not in peers[i].statuses]
    wrong = [(expected[(i, s)], peers[i].statuses[s][0]) for (i, s) in expected
             if s in peers[i].statuses and peers[i].statuses[s][0] != expected[(i, s)][1]]
    longest = max((len(m) for p in peers for _, m in p.statuses.values()), default=0)
    goaways = [p.describe() for p in peers if p.goaway is not None]
    for p in peers:
        p.close()
    # The loops give freed request buffers back to the system at most once a second.
    settle = time.monotonic() + 2.5
    after = rss_kib(pid)
    while after > before * 1.05 and time.monotonic() < settle:
        time.sleep(0.1)
        after = rss_kib(pid)
    assert not unanswered, f"{len(unanswered)} of {len(expected)} streams never answered, e.g. {unanswered[:3]}"
    assert not wrong, f"unexpected statuses: {wrong[:5]}"
    assert longest <= 2048, f"a grpc-message of {longest} characters"
    assert not goaways, goaways
    retained = (after - before) / max(before, 1)
    assert retained < 0.05, f"RSS {before // 1024} MiB before, {after // 1024} MiB after the connections closed"
    return (f"{len(expected)} streams: all answered (NOT_FOUND / INVALID_ARGUMENT), longest grpc-message "
            f"{longest} characters; RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB after close")


_BOMB = None


def gzip_bomb():
    """100 MiB of zeros, gzipped (about 100 KB): inflating it stops at max_request_bytes."""
    global _BOMB
    if _BOMB is None:
        import zlib

        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = b"\0" * (1 << 20)
        _BOMB = b"".join(compressor.compress(chunk) for _ in range(100)) + compressor.flush()
    return _BOMB


def compressed_message(payload: bytes):
    return struct.pack(">BI", 1, len(payload)) + payload


def attack_gzip_bombs(gw):
    """64 gzip bombs (100 MiB of zeros each, ~100 KB on the wire) on one connection (x SCALE), then a valid
    compressed call: every bomb is refused with RESOURCE_EXHAUSTED naming its limit, the valid call is served,
    and the event loop spends no time inflating (measured from the loop thread's CPU time)."""
    import zlib

    pid = gw.process.pid
    peer = RawPeer(gw.port)
    block = peer.header_block(request_headers(extra=(("grpc-encoding", "gzip"),)))
    bomb = compressed_message(gzip_bomb())
    count = 64 * SCALE
    # The loop also serves the well-behaved client: measure its share first and take it out.
    quiet_started, quiet_cpu = time.monotonic(), loop_cpu_seconds(pid)
    time.sleep(1.0)
    background = (loop_cpu_seconds(pid) - quiet_cpu) / (time.monotonic() - quiet_started)
    loop_before = loop_cpu_seconds(pid)
    started = time.monotonic()
    streams = []
    for _ in range(count):
        stream = peer.new_stream()
        peer.send(request_frames(stream, block, bomb))
        streams.append(stream)
    assert peer.wait_for(lambda: all(s in peer.statuses for s in streams), 60), peer.describe()
    elapsed = time.monotonic() - started
    loop_cpu = max(0.0, loop_cpu_seconds(pid) - loop_before - background * elapsed)
    codes = collections.Counter(peer.statuses[s][0] for s in streams)
    messages = {peer.statuses[s][1].split(":")[0][:60] for s in streams}
    assert codes == {8: count}, f"bomb statuses: {dict(codes)} {messages}"
    assert all("max_request_bytes" in peer.statuses[s][1] or "max_inflated_bytes" in peer.statuses[s][1]
               for s in streams), messages
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    valid = compressor.compress(model_infer_request()) + compressor.flush()
    good = peer.new_stream()
    peer.send(request_frames(good, block, compressed_message(valid)))
    # The per-connection budget may still be in debt from the bombs: it refills within a second.
    assert peer.wait_for(lambda: good in peer.statuses, 10), peer.describe()
    if peer.statuses[good][0] == 8:
        time.sleep(1.2)
        good = peer.new_stream()
        peer.send(request_frames(good, block, compressed_message(valid)))
        assert peer.wait_for(lambda: good in peer.statuses, 10), peer.describe()
    assert peer.statuses[good][0] == 0, f"a valid gzip call: {peer.statuses[good]}"
    per_call = loop_cpu / count * 1000
    # Receiving ~100 KB costs the loop well under a millisecond; inflating it there cost 70-290 ms.
    assert per_call < 10, f"the event loop spent {per_call:.1f} ms per compressed request"
    peer.close()
    return (f"{count} bombs in {elapsed:.1f} s: RESOURCE_EXHAUSTED each ({'; '.join(sorted(messages))}); "
            f"loop CPU {per_call:.2f} ms per bomb; a valid gzip call served")


def attack_unbudgeted_frames(gw):
    """Frames that cost work and were never charged: unknown extension frames, WINDOW_UPDATE of 1 byte and
    unsolicited PING ACKs, each in a tight loop on its own connection: GOAWAY ENHANCE_YOUR_CALM naming the
    budget."""
    floods = {
        "unknown type 0xfa": frame(0xFA, 0, 0, b"x" * 8),
        "WINDOW_UPDATE +1": frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)),
        "PING ACK": frame(PING, ACK, 0, b"12345678"),
    }
    results = []
    for label, one in floods.items():
        peer = RawPeer(gw.port)
        sent = 0
        while sent < 200_000 * SCALE and not peer.send_failed and peer.goaway is None:
            peer.send(one * 500)
            sent += 500
        expect_goaway(peer, ENHANCE_YOUR_CALM)
        assert "limits.max_control_frame_burst" in peer.goaway[2], peer.describe()
        results.append(f"{label}: GOAWAY {name(peer.goaway_code)} ('{peer.goaway[2].split(':')[0]}', {sent} sent)")
        peer.close()
    return "; ".join(results)


def attack_half_sent_headers(gw):
    """50 connections that send HEADERS without END_HEADERS and never continue, and 50 admin connections that
    send a request head without its final empty line: all closed within their timeouts."""
    peers = []
    for _ in range(50):
        p = RawPeer(gw.port)
        p.send(frame(HEADERS, 0, 1, plain_request_block()))
        peers.append(p)
    admins = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", gw.admin_port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        admins.append(sock)
    started = time.monotonic()
    for p in peers:
        p.wait_closed(HEADER_TIMEOUT + 2 - (time.monotonic() - started))
    grpc_elapsed = time.monotonic() - started
    codes = collections.Counter(p.goaway_code for p in peers)
    open_grpc = sum(1 for p in peers if p.closed_at is None)
    reasons = {p.goaway[2] for p in peers if p.goaway}
    for p in peers:
        p.close()
    closed_admin = 0
    for sock in admins:
        sock.settimeout(max(0.1, ADMIN_IDLE_TIMEOUT + 3 - (time.monotonic() - started)))
        try:
            while sock.recv(4096):
                pass
            closed_admin += 1
        except ConnectionResetError:
            closed_admin += 1
        except OSError:
            pass
        sock.close()
    admin_elapsed = time.monotonic() - started
    assert open_grpc == 0, f"{open_grpc} of 50 half-sent header blocks still open after {grpc_elapsed:.1f} s"
    assert codes == {NO_ERROR: 50}, f"GOAWAY codes {dict(codes)}"
    assert any("limits.header_timeout_seconds" in r for r in reasons), reasons
    assert closed_admin == 50, f"{50 - closed_admin} of 50 admin connections with a partial head still open"
    return (f"gRPC: 50 GOAWAY NO_ERROR after the {HEADER_TIMEOUT} s header timeout ({grpc_elapsed:.1f} s); admin: "
            f"50 closed by the {ADMIN_IDLE_TIMEOUT} s idle timeout ({admin_elapsed:.1f} s)")


PER_ADDRESS_LIMIT = 16


def attack_nul_names_and_per_address_limit(gw):
    """A model name with a NUL inside ('digits\\0x') and other C-string-hostile names, then 40 connections from
    one address against max_connections_per_address 16 (the good client holds one)."""
    peer = RawPeer(gw.port)
    cases = {
        "model_name": infer_request(model="digits\0x"),
        "model_version": infer_request(version="2\0"),
        "inputs[0].name": infer_request(input_name="pixels\0"),
    }
    streams = {label: peer.call(body) for label, body in cases.items()}
    assert peer.wait_for(lambda: all(s in peer.statuses for s in streams.values()), 5), peer.describe()
    for label, stream in streams.items():
        status, message = peer.statuses[stream]
        assert status == 3 and label in message and "NUL" in message, (label, status, message)
    peer.close()
    time.sleep(0.2)
    sockets = [socket.create_connection(("127.0.0.1", gw.port)) for _ in range(40)]
    for sock in sockets:
        sock.sendall(PREFACE + settings())
    time.sleep(0.5)
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            data = sock.recv(65536)
            closed += 1 if data == b"" else 0
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
    for sock in sockets:
        sock.close()
    kept = len(sockets) - closed
    assert kept == PER_ADDRESS_LIMIT - 1, f"{kept} of 40 connections kept, expected {PER_ADDRESS_LIMIT - 1}"
    return (f"NUL in model_name / model_version / input name: INVALID_ARGUMENT naming the field; 40 connections "
            f"from one address: {kept} kept, {closed} closed (max_connections_per_address {PER_ADDRESS_LIMIT})")


ROUND_TWO_CONFIG = f"  header_timeout_seconds: {HEADER_TIMEOUT}\nadmin:\n  idle_timeout_seconds: {ADMIN_IDLE_TIMEOUT}\n"


# HTTP/1.1 (the v2 REST listener, on the same event loops as the gRPC port the well-behaved client uses).


def http1_socket(gw, receive_buffer=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        # Set before connecting, so that the window the server sees is small too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", gw.rest_port))
    return sock


def read_until_closed(sock, timeout):
    """Everything the server sends until it closes (EOF or reset) or `timeout` passes: (bytes, closed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        return data, True
    except ConnectionResetError:
        return data, True
    except (TimeoutError, OSError):
        return data, False


def attack_http1_slowloris(gw):
    """50 REST connections trickle request headers (one byte every 250 ms) and never finish them: each is answered
    408 naming limits.header_timeout_seconds and closed, although bytes keep arriving."""
    socks = [http1_socket(gw) for _ in range(50)]
    for sock in socks:
        sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    started = time.monotonic()
    answered = {}
    while len(answered) < len(socks) and time.monotonic() - started < HEADER_TIMEOUT + 4:
        waiting = [sock for sock in socks if sock.fileno() not in answered]
        readable, _, _ = select.select(waiting, [], [], 0.25)
        for sock in readable:
            answered[sock.fileno()] = read_until_closed(sock, 2)
        for sock in waiting:
            if sock not in readable:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    assert len(answered) == 50, f"{50 - len(answered)} of 50 trickling connections still open after {elapsed:.1f} s"
    for data, closed in answered.values():
        assert data.startswith(b"HTTP/1.1 408 ") and b"limits.header_timeout_seconds" in data, data[:200]
        assert closed, "answered 408 but left open"
    return f"50 × 408 (limits.header_timeout_seconds, {HEADER_TIMEOUT} s) and closed in {elapsed:.1f} s despite the trickle"


def attack_http1_stalled_bodies(gw):
    """50 REST connections declare a 4000-byte JSON body, send 10 bytes of it and stop: each is answered 408
    naming limits.idle_timeout_seconds and closed."""
    socks = [http1_socket(gw) for _ in range(50)]
    for sock in socks:
        sock.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4000\r\n\r\n{\"inputs\":")
    started = time.monotonic()
    results = [read_until_closed(sock, IDLE_TIMEOUT + 4 - (time.monotonic() - started)) for sock in socks]
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    for data, closed in results:
        assert data.startswith(b"HTTP/1.1 408 ") and b"limits.idle_timeout_seconds" in data, data[:200]
        assert closed, "answered 408 but left open"
    return f"50 × 408 (body stalled, limits.idle_timeout_seconds, {IDLE_TIMEOUT} s) and closed in {elapsed:.1f} s"


SMUGGLING = {
    "Content-Length with Transfer-Encoding": b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: a\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "two different Content-Lengths": b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: a\r\n"
    b"Content-Length: 4\r\nContent-Length: 40\r\n\r\nGET /v2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "Transfer-Encoding not ending in chunked": b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: a\r\n"
    b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /v2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "a chunk size that is not hex": b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: a\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\nGET /v2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "a space before the colon": b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: a\r\n"
    b"Content-Length : 5\r\n\r\nGET /v2 HTTP/1.1\r\nHost: a\r\n\r\n",
}


def attack_http1_smuggling(gw):
    """Request smuggling shapes: each request whose length is ambiguous is answered 400 once and its connection
    closed, so the request hidden behind it is never answered."""
    verdicts = []
    for label, payload in SMUGGLING.items():
        sock = http1_socket(gw)
        sock.sendall(payload)
        data, closed = read_until_closed(sock, 5)
        sock.close()
        assert data.startswith(b"HTTP/1.1 400 "), (label, data[:300])
        assert data.count(b"HTTP/1.1 ") == 1, (label, data[:600])
        assert closed, (label, "left open")
        verdicts.append(label)
    return f"400 and closed, the hidden request unanswered: {'; '.join(verdicts)}"


def attack_http1_huge_headers(gw):
    """20 REST connections each send a 1 MiB header line, and 20 send 10 000 small headers: each is answered 431
    naming the limit it passed (limits.max_header_list_bytes, or 256 fields) and closed without the server reading
    the rest."""
    verdicts = collections.Counter()
    for index in range(40):
        sock = http1_socket(gw)
        if index % 2 == 0:
            head = b"GET /v2 HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"a" * (1 << 20) + b"\r\n\r\n"
        else:
            head = b"GET /v2 HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n"
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            sock.sendall(head)  # the server may close before all of it is sent
        data, closed = read_until_closed(sock, 5)
        sock.close()
        assert data.startswith(b"HTTP/1.1 431 "), data[:300]
        assert b"limits.max_header_list_bytes" in data or b"more than 256 header fields" in data, data[:300]
        assert closed, "answered 431 but left open"
        verdicts["431"] += 1
    return (f"{verdicts['431']} × 431 and closed: 20 with a 1 MiB header (limits.max_header_list_bytes), 20 with "
            "10 000 headers (256 fields)")


def attack_http1_pipelining_flood(gw):
    """One REST connection pipelines 50 000 config requests and never reads (a 4 KiB receive buffer): the server stops
    reading once its output passes limits.max_output_buffer_bytes and closes the connection after
    limits.write_stall_timeout_seconds, instead of buffering 50 000 answers."""
    sock = http1_socket(gw, receive_buffer=4096)
    request = b"GET /v2/models/digits/config HTTP/1.1\r\nHost: a\r\n\r\n"  # 373-byte answers: 18 MB in all
    burst = request * 1000
    sock.settimeout(0.5)
    sent = 0
    started = time.monotonic()
    try:
        while sent < 50_000 * SCALE and time.monotonic() - started < 10:
            sock.sendall(burst)
            sent += 1000
    except OSError:
        pass  # the server stopped reading (send blocked), or closed
    blocked_after = time.monotonic() - started
    time.sleep(STALL_TIMEOUT + 2)
    data, closed = read_until_closed(sock, 3)
    sock.close()
    answers = data.count(b"HTTP/1.1 200 ")
    assert closed, f"a flood that never reads was not closed ({answers} answers read)"
    assert answers < 50_000 * SCALE, f"all {answers} pipelined requests were answered into a reader that never reads"
    return (f"{sent} requests sent in {blocked_after:.1f} s; reading stopped at the output limit and the connection "
            f"closed after the {STALL_TIMEOUT} s write stall ({answers} answers had reached the reader)")


def attack_none(gw):
    """No attack: the well-behaved client alone, for the baseline its figures are compared with."""
    time.sleep(3)
    return "no attack (3 s): the well-behaved client's baseline"


CASES = {
    "baseline": (attack_none, ""),
    "rapid_reset": (attack_rapid_reset, ""),
    "made_you_reset": (attack_made_you_reset, ""),
    "continuation_flood": (attack_continuation_flood, ""),
    "huge_header_list_and_hpack_bomb": (attack_huge_header_list, ""),
    "settings_flood": (attack_settings_flood, ""),
    "ping_flood": (attack_ping_flood, ""),
    "window_update_overflow": (attack_window_update_overflow, ""),
    "slow_reader": (attack_slow_reader, ""),
    "slowloris": (attack_slowloris, ""),
    "idle_connections": (attack_idle_connections, ""),
    "huge_message_prefix": (attack_huge_message_prefix, "  max_buffered_request_bytes: 134217728\n"),
    "long_echoed_names": (attack_long_echoed_names, ""),
    "gzip_bombs": (attack_gzip_bombs, ""),
    "unbudgeted_frames": (attack_unbudgeted_frames, ""),
    "half_sent_headers": (attack_half_sent_headers, ROUND_TWO_CONFIG),
    "nul_names_and_per_address_limit": (
        attack_nul_names_and_per_address_limit, f"  max_connections_per_address: {PER_ADDRESS_LIMIT}\n"
    ),
    "http1_slowloris": (attack_http1_slowloris, f"  header_timeout_seconds: {HEADER_TIMEOUT}\n"),
    "http1_stalled_bodies": (attack_http1_stalled_bodies, ""),
    "http1_smuggling": (attack_http1_smuggling, ""),
    "http1_huge_headers": (attack_http1_huge_headers, ""),
    "http1_pipelining_flood": (attack_http1_pipelining_flood, ""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_peer(case):
    attack, extra_config = CASES[case]
    outcome = run_case(case, attack, extra_config)
    print(f"{case}: {outcome.verdict}")


def test_admin_probes_without_token_and_no_paths_in_errors(tmp_path):
    """Beyond loopback (0.0.0.0 with a token): /healthz and /readyz answer without the token and say only the
    status, everything else still needs it, a wrong token is refused; an error about a missing model file does
    not show where the repository lives."""
    import json
    import urllib.error
    import urllib.request

    repository = copy_digits(tmp_path)
    config = tmp_path / "switchyard.yaml"
    config.write_text("admin:\n  token: probe-token\n")
    port, admin_port = free_ports(2)
    gw = Gateway(
        ["--config", str(config), "--model-repository", str(repository), "--listen", f"127.0.0.1:{port}", "--rest-listen", "",
         "--admin-listen", f"0.0.0.0:{admin_port}"],
        port, str(tmp_path / "gateway.log"), admin_port,
    )
    try:
        gw.wait_listening()

        def call(method, path, token=None):
            request = urllib.request.Request(f"http://127.0.0.1:{admin_port}{path}", method=method)
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read() or b"null")

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert call("GET", "/healthz") == (200, {"status": "ok"})
        status, body = call("GET", "/readyz")
        assert status == 200 and body["status"] == "ready", body
        assert call("GET", "/v1/routes")[0] == 401
        assert call("GET", "/healthz", token="wrong")[0] == 401
        status, body = call("POST", "/v1/models/digits/versions/7/load", token="probe-token")
        text = json.dumps(body)
        assert status == 404, (status, body)
        assert str(tmp_path) not in text and str(repository) not in text, text
    finally:
        gw.stop()


GENERATED_END = "<!-- The part above is generated by test_hostile_peers.py --report; what follows is kept. -->"


def run_all():
    """Runs every selected case once; returns the outcomes (None for a failed case) and the failure messages."""
    outcomes, failures = {}, {}
    only = os.environ.get("SWITCHYARD_HOSTILE_CASES")
    for case, (attack, extra_config) in CASES.items():
        if only and case != "baseline" and case not in only.split(","):
            continue
        try:
            outcomes[case] = run_case(case, attack, extra_config)
        except AssertionError as error:
            outcomes[case] = None
            failures[case] = str(error).splitlines()[0][:200]
        print(f"{case}: {'FAILED ' + failures[case] if case in failures else 'ok'}", file=sys.stderr)
    return outcomes, failures


def run_table(outcomes, failures):
    """One run's Markdown table."""
    rows = []
    baseline = outcomes.get("baseline")
    for case, o in outcomes.items():
        if o is None:
            rows.append(f"| {case} | FAILED: {failures[case]} | | | | | | | | | | |")
            continue
        ratio = f"{o.good_p99 / baseline.good_p99:.2f}" if baseline else ""
        rows.append(
            f"| {case} | {o.verdict} | {o.rss_before / 1024:.1f} | {o.rss_peak / 1024:.1f} | "
            f"{o.rss_after / 1024:.1f} | {100 * (o.rss_after - o.rss_before) / o.rss_before:+.1f} % | "
            f"{o.settle_seconds:.1f} | "
            f"{o.good_calls} | {len(o.good_errors)} | {o.good_p50 * 1000:.2f} | {o.good_p99 * 1000:.2f} | {ratio} |"
        )
    return "\n".join([
        "| case | outcome | RSS before (MiB) | RSS peak (MiB) | RSS after (MiB) | RSS after vs before | read after (s) "
        "| good calls | good errors | good p50 (ms) | good p99 (ms) | p99 / baseline p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ])


def runs_table(runs):
    """Every run's RSS and p99 figures per case, and the median ratio, for N runs."""
    import statistics

    rows = []
    for case in runs[0][0]:
        seen = [outcomes.get(case) for outcomes, _ in runs]
        if any(o is None for o in seen):
            rows.append(f"| {case} | failed in {sum(o is None for o in seen)} of {len(runs)} runs | | | | |")
            continue
        ratios = [
            o.good_p99 / outcomes["baseline"].good_p99
            for o, (outcomes, _) in zip(seen, runs)
            if outcomes.get("baseline") is not None
        ]
        rss = ", ".join(f"{100 * (o.rss_after - o.rss_before) / o.rss_before:+.1f} %" for o in seen)
        p99s = ", ".join(f"{o.good_p99 * 1000:.2f}" for o in seen)
        errors = sum(len(o.good_errors) for o in seen)
        rows.append(
            f"| {case} | {rss} | {errors} | {p99s} | {', '.join(f'{r:.2f}' for r in ratios)} | "
            f"{statistics.median(ratios):.2f} |"
        )
    return "\n".join([
        f"| case | RSS after vs before ({len(runs)} runs) | good errors | good p99 (ms, {len(runs)} runs) "
        f"| p99 / baseline p99 ({len(runs)} runs) | median ratio |",
        "| --- | --- | ---: | --- | --- | ---: |",
        *rows,
    ])


def report(path=None, runs=1):
    """Runs every case `runs` times and prints Markdown tables; with `path`, writes the generated part of the
    results document (the first run's table, and with several runs every run's figures and the medians), keeping
    whatever the document has after GENERATED_END."""
    results = []
    for number in range(runs):
        results.append(run_all())
        print(f"run {number + 1} of {runs} done", file=sys.stderr)
    table = run_table(*results[0])
    summary = runs_table(results) if runs > 1 else ""
    if path is None:
        print(table)
        print()
        print(summary)
        return
    import platform
    import subprocess

    version = subprocess.run([binary(), "--version"], capture_output=True, text=True).stdout.strip()
    scale = f"SWITCHYARD_HOSTILE_SCALE={SCALE} " if SCALE > 1 else ""
    separate = "SWITCHYARD_HOSTILE_SEPARATE_CPUS=1 " if SEPARATE_CPUS else ""
    runs_flag = f" --runs {runs}" if runs > 1 else ""
    placement = (
        "The attack runs on CPU 0 and the gateway with the well-behaved client on the other CPUs, as when the "
        "attacker is another machine."
        if SEPARATE_CPUS
        else "The attack, the gateway and the well-behaved client share every CPU."
    )
    load = os.getloadavg()
    document = pathlib.Path(path)
    kept = ""
    if document.exists() and GENERATED_END in document.read_text():
        kept = document.read_text().split(GENERATED_END, 1)[1]
    several = (
        f"""
## {runs} runs in a row

The same cases {runs} times, one run after the other. One run's p99 ratio moves with the machine (the baseline's own
p99 is the 99th percentile of about 1500 calls); the median of the {runs} ratios per case is the figure to read.

{summary}
"""
        if runs > 1
        else ""
    )
    document.write_text(f"""# Hostile HTTP/2 and HTTP/1.1 peers: measurements

Produced by `{separate}{scale}python Tests/EndToEnd/test_hostile_peers.py --report {path}{runs_flag}` (the same
cases `pytest Tests/EndToEnd/test_hostile_peers.py` runs; see [SECURITY.md](../SECURITY.md) for the limits and what
each attack does). Each case starts a fresh gateway on the demo models (`models/`, one event loop, the
limits below plus the shortened timeouts `handshake_timeout_seconds: {HANDSHAKE_TIMEOUT}`,
`idle_timeout_seconds: {IDLE_TIMEOUT}`, `write_stall_timeout_seconds: {STALL_TIMEOUT}` and
`max_output_buffer_bytes: 262144`), calls each version 20 times with the largest request an attack sends (64
rows: the engine's buffers grow once to the largest batch they have run, about 4 MiB, which is steady state, not
what an attack leaves), starts a grpcio client in a process of its own that calls `ModelInfer`
(digits, 1 row) in a loop with a 2 ms pause, lets it call for 1 s and until the gateway's RSS has not changed for
0.5 s (at most 5 s more), then runs the attack {SCALE} time(s) on fresh
connections while sampling the gateway's VmRSS every 50 ms. {placement}

- *RSS before*: just before the attack, once steady; *peak*: the largest sample during it; *after*: once back within 5 % of
  *before*, read every 0.1 s from 0.6 s after the attack ended, for at most {0.6 + RSS_SETTLE_SECONDS:.1f} s (*read
  after* says when; the gateway returns freed memory to the system at most once a second).
- *p99 / baseline p99*: the good client's p99 during the case over its p99 in the `baseline` case (no attack).
- *good calls / errors / p50 / p99*: the well-behaved client's calls during the whole case (its latency
  includes Python and grpcio, about 0.3 ms on an idle machine).

Machine: {cpu_model()}, {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, load average
{load[0]:.1f} at the end of the run; gateway `{version or binary()}`.

{table}
{several}
{GENERATED_END}{kept}""")
    print(table)
    print(summary)


def cpu_model():
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def binary():
    from conftest import binary as find

    return find()


if __name__ == "__main__":
    if "--report" in sys.argv:
        index = sys.argv.index("--report")
        target = sys.argv[index + 1] if index + 1 < len(sys.argv) and not sys.argv[index + 1].startswith("--") else None
        count = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 1
        report(target, count)
    else:
        sys.exit(pytest.main([__file__, "-q", *sys.argv[1:]]))

"""Tools for hostile-peer tests: a raw HTTP/2 client that writes frames byte for byte (so it can break the
rules on purpose) and reads the server's frames on a background thread, a well-behaved grpcio client that
measures errors and latency while an attack runs, and an RSS sampler for the gateway process.

Frames are built by hand (9-byte header + payload) and header blocks with the `hpack` package that comes
with `h2`, so nothing between the test and the socket enforces the protocol."""

import collections
import multiprocessing
import socket
import struct
import threading
import time

import grpc
import hpack
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x5, 0x6, 0x8, 0x9, 0xB
ERROR_NAMES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def frame(kind, flags, stream_id, payload=b""):
    """One HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id & 0x7FFFFFFF) + payload


def settings(**values):
    ids = {"header_table_size": 1, "enable_push": 2, "max_concurrent_streams": 3, "initial_window_size": 4,
           "max_frame_size": 5, "max_header_list_size": 6}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


def request_headers(path=MODEL_INFER, extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"), ("te", "trailers"), *extra]


def grpc_message(payload: bytes, declared=None):
    """A gRPC length-prefixed message; `declared` overrides the 4-byte length (to lie about it)."""
    return struct.pack(">BI", 0, len(payload) if declared is None else declared) + payload


def model_infer_request(rows=1, version="") -> bytes:
    request = service_pb2.ModelInferRequest(model_name="digits", model_version=version)
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[rows, 64])
    del tensor
    request.raw_input_contents.append(np.zeros((rows, 64), np.float32).tobytes())
    return request.SerializeToString()


class RawPeer:
    """A raw HTTP/2 client connection. A reader thread collects what the server sends: GOAWAY (code, debug
    data), RST_STREAM codes, the grpc-status of trailers, and when the server closed the socket."""

    def __init__(self, port, preface=True, read=True, rcvbuf=None, timeout=5.0, initial_settings=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.goaway = None  # (last_stream_id, error_code, debug)
        self.resets = collections.Counter()
        self.statuses = {}  # stream id -> (grpc-status, grpc-message)
        self.frames = collections.Counter()
        self.closed_at = None
        self.opened_at = time.monotonic()
        self.send_failed = False
        self.next_stream = 1
        self._reader = None
        self._send_lock = threading.Lock()
        self.settings_acknowledged = 0
        self._acknowledge = preface  # without our preface, a SETTINGS ACK would be taken for bad magic
        if preface:
            self.send(PREFACE + settings(**(initial_settings or {"initial_window_size": 1 << 20})))
        if read:
            self._reader = threading.Thread(target=self._read_loop, daemon=True)
            self._reader.start()
            if preface:
                # Our ACK of the server's SETTINGS must not land inside a header block the test sends later
                # (a frame between HEADERS and CONTINUATION is a protocol error): get it out of the way first.
                self.wait_for(lambda: self.settings_acknowledged > 0 or self.closed_at is not None, 5)

    # Sending ---------------------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Writes everything; False (and remembers it) once the server has closed the connection."""
        try:
            with self._send_lock:  # the reader thread acknowledges SETTINGS on the same socket
                self.sock.sendall(data)
            return True
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.send_failed = True
            return False

    def header_block(self, headers) -> bytes:
        return self.encoder.encode(headers)

    def new_stream(self) -> int:
        stream = self.next_stream
        self.next_stream += 2
        return stream

    def call(self, body: bytes, path=MODEL_INFER, extra=()) -> int:
        """A complete unary gRPC request on a new stream."""
        stream = self.new_stream()
        block = self.header_block(request_headers(path, extra))
        self.send(frame(HEADERS, END_HEADERS, stream, block) + frame(DATA, END_STREAM, stream, grpc_message(body)))
        return stream

    # Receiving -------------------------------------------------------------------------------------

    def _recv_exact(self, n):
        chunks = []
        while n > 0:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionResetError("closed")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_loop(self):
        self.sock.settimeout(None)
        try:
            while True:
                head = self._recv_exact(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = self._recv_exact(length) if length else b""
                self.frames[kind] += 1
                if kind == GOAWAY and self.goaway is None:
                    last, code = struct.unpack(">II", payload[:8])
                    self.goaway = (last & 0x7FFFFFFF, code, payload[8:].decode("utf-8", "replace"))
                elif kind == SETTINGS and not flags & ACK and self._acknowledge:
                    self.send(frame(SETTINGS, ACK, 0))  # the server's windows apply once acknowledged
                    self.settings_acknowledged += 1
                elif kind == RST_STREAM:
                    self.resets[struct.unpack(">I", payload[:4])[0]] += 1
                elif kind == HEADERS:
                    try:
                        headers = dict(self.decoder.decode(payload, raw=False))
                    except Exception:  # noqa: BLE001 - a block split over CONTINUATION is not needed here
                        continue
                    if "grpc-status" in headers:
                        self.statuses[stream] = (int(headers["grpc-status"]), headers.get("grpc-message", ""))
        except (OSError, ConnectionResetError):
            pass
        self.closed_at = time.monotonic()

    def wait_closed(self, timeout=5.0) -> bool:
        """Whether the server closed the connection within `timeout` seconds."""
        if self._reader is None:
            self.sock.settimeout(timeout)
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    if not self.sock.recv(1 << 16):
                        self.closed_at = time.monotonic()
                        return True
            except TimeoutError:
                return False
            except OSError:
                self.closed_at = time.monotonic()
                return True
            return False
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def wait_for(self, predicate, timeout=5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    @property
    def goaway_code(self):
        return None if self.goaway is None else self.goaway[1]

    def describe(self) -> str:
        goaway = "none" if self.goaway is None else f"{ERROR_NAMES.get(self.goaway[1], self.goaway[1])} " \
            f"(last stream {self.goaway[0]}, '{self.goaway[2]}')"
        resets = {ERROR_NAMES.get(k, k): v for k, v in self.resets.items()}
        return f"GOAWAY {goaway}; RST_STREAM {resets}; closed={self.closed_at is not None}"

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the reader thread's recv would keep the connection open
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _well_behaved_calls(address, timeout, pause, ready, stop, results):
    """The well-behaved client's loop, in a process of its own (see WellBehavedClient)."""
    request = service_pb2.ModelInferRequest.FromString(model_infer_request())
    latencies, errors = [], []
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(request, timeout=timeout)  # connected and warm before the attack
        ready.set()
        while not stop.is_set():
            start = time.perf_counter()
            try:
                response = stub.ModelInfer(request, timeout=timeout)
                if len(response.raw_output_contents) != 2:
                    errors.append(f"unexpected response: {len(response.raw_output_contents)} outputs")
            except grpc.RpcError as error:
                errors.append(f"{error.code()}: {error.details()}")
            latencies.append(time.perf_counter() - start)
            time.sleep(pause)
    results.send((latencies, errors))
    results.close()


class WellBehavedClient:
    """A grpcio client calling ModelInfer on the demo model in a loop, recording each call's latency and every
    error, until stopped. It runs in a process of its own: an attack written in Python on the test's threads holds
    the interpreter lock while it builds and reads frames, and a client thread beside it would measure that wait
    as the gateway's latency."""

    def __init__(self, address, timeout=5.0, pause=0.002):
        self.address = address
        self.timeout = timeout
        self.pause = pause
        self.latencies = []
        self.errors = []
        context = multiprocessing.get_context("spawn")  # grpcio does not survive fork
        self._ready = context.Event()
        self._stop = context.Event()
        self._results, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_well_behaved_calls,
            args=(address, timeout, pause, self._ready, self._stop, child_end),
            daemon=True,
        )

    def __enter__(self):
        self._process.start()
        if not self._ready.wait(30):
            self._process.kill()
            raise AssertionError(f"the well-behaved client could not call {self.address} (exit {self._process.exitcode})")
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._results.poll(self.timeout + 5):
            self.latencies, self.errors = self._results.recv()
        else:
            self.errors = ["the well-behaved client sent no results"]
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()

    @property
    def calls(self):
        return len(self.latencies)

    def quantile(self, q):
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid) -> int:
    """The process's resident set size in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class RSSSampler:
    """Samples a process's RSS every `interval` seconds on a thread; `peak` is the largest sample."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak(self):
        return max(self.samples) if self.samples else 0

"""Fixtures for end-to-end tests: start the real `switchyard` binary on a free loopback port and stop it
with SIGTERM, checking that it drains and exits 0."""

import os
import pathlib
import signal
import socket
import subprocess
import time

import grpc
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: the sockets are held together, so the kernel cannot hand out one port twice (as
    `free_port()` called in a row may)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def binary() -> str:
    path = os.environ.get("SWITCHYARD_BIN")
    if not path:
        out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
        path = os.path.join(out.stdout.strip(), "switchyard")
    assert os.path.exists(path), f"gateway binary not found at {path}; run `swift build` first"
    return path


class Gateway:
    """A running gateway process."""

    def __init__(self, args, port, log_path, admin_port=None):
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.admin_port = admin_port
        self.admin_url = f"http://127.0.0.1:{admin_port}" if admin_port else None
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen([binary(), "serve", *args], stdout=self.log, stderr=subprocess.STDOUT)

    def wait_listening(self, timeout=30.0, tls=False):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"gateway did not listen within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return pathlib.Path(self.log_path).read_text()

    def stop(self, expect_code=0, timeout=30.0):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired as timed_out:
                self.process.kill()
                raise AssertionError(f"gateway did not drain within {timeout}s:\n{self.output()}") from timed_out
        self.log.close()
        assert self.process.returncode == expect_code, f"exit code {self.process.returncode}:\n{self.output()}"


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory):
    started = []

    def start(*args, repository=MODELS, tls=False, rest=False):
        # Every gateway gets its own admin port so that gateways of one session never collide on the default;
        # the REST listener (default 127.0.0.1:8000) is off unless a test asks for it, then on a free port.
        port, admin_port, rest_port = free_ports(3)
        rest_port = rest_port if rest else None
        log = tmp_path_factory.mktemp("gateway") / "gateway.log"
        gw = Gateway(
            ["--model-repository", str(repository), "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin_port}",
             "--rest-listen", f"127.0.0.1:{rest_port}" if rest else "", *args],
            port, str(log), admin_port,
        )
        gw.rest_port = rest_port
        gw.rest_url = f"http://127.0.0.1:{rest_port}" if rest else None
        started.append(gw)
        return gw.wait_listening(tls=tls)

    yield start
    for gw in started:
        if gw.process.poll() is None:
            gw.stop()


@pytest.fixture(scope="session")
def gateway(start_gateway):
    """The gateway on the bundled demo repository."""
    return start_gateway()


@pytest.fixture()
def channel(gateway):
    with grpc.insecure_channel(gateway.address) as ch:
        yield ch

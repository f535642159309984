"""Tracing through the real gateway into a real OTLP/HTTP receiver (the OpenTelemetry protocol's own protobufs):
a call with a sampled `traceparent` continues the caller's trace with the gateway's spans (receive, route,
validate, queue, compute, respond) and their attributes; calls that ran in one batch share a batch span linked to
each; a shadow run is a span linked to its call; the sampling ratio is honoured at 0 and 1; a malformed
`traceparent` starts a new trace; with the collector down calls are unaffected and the dropped spans are
counted on /metrics; and an admin change made by a request with a `traceparent` records its trace id in the audit
log."""

import concurrent.futures
import json
import shutil
import subprocess
import time
import urllib.request

import grpc
import numpy as np
import pytest
from conftest import MODELS, binary, free_ports
from faults_support import wait_admin, wait_value
from otlp_receiver import Receiver, attributes
from tritonclient.grpc import service_pb2, service_pb2_grpc

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
STEPS = ["receive", "route", "validate", "queue", "compute", "respond"]


def start(start_gateway, tmp_path_factory, endpoint, ratio, shadow=False, rest=False):
    root = tmp_path_factory.mktemp("tracing")
    shutil.copytree(MODELS / "digits", root / "models" / "digits")
    route = """
routes:
  - model: digits
    policy: fixed
    versions: [{version: "2"}]
    shadow: {version: "1", fraction: 1.0}
""" if shadow else ""
    config = root / "switchyard.yaml"
    config.write_text(f"""
tracing:
  otlp_endpoint: {endpoint}
  sample_ratio: {ratio}
  service_name: switchyard-test
  export_interval_ms: 100
  export_timeout_ms: 1000
{route}""")
    return start_gateway("--config", str(config), repository=root / "models", rest=rest)


def infer(gateway, traceparent=None, rows=1, request_id="", version=""):
    pixels = np.random.default_rng(len(request_id)).uniform(0, 16, size=(rows, 64)).astype(np.float32)
    request = service_pb2.ModelInferRequest(model_name="digits", model_version=version, id=request_id)
    request.inputs.add(name="pixels", datatype="FP32", shape=[rows, 64])
    request.raw_input_contents.append(pixels.tobytes())
    metadata = [("traceparent", traceparent)] if traceparent else []
    with grpc.insecure_channel(gateway.address) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=10)
    assert response.model_name == "digits"
    return response


def metrics(gateway):
    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("switchyard_trace_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_for(predicate):
    return wait_value(predicate, timeout=15.0)


def calls_in(receiver, trace_id=None):
    return [
        span for _, span in receiver.spans()
        if span.name == "ModelInfer" and (trace_id is None or span.trace_id.hex() == trace_id)
    ]


@pytest.fixture(scope="module")
def collector():
    receiver = Receiver(free_ports(1)[0])
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def traced(start_gateway, tmp_path_factory, collector):
    """Ratio 0: only calls whose caller sampled them are traced. digits is served by version 2, mirrored to 1."""
    return start(start_gateway, tmp_path_factory, collector.endpoint, 0, shadow=True, rest=True)


def test_a_sampled_callers_trace_continues_through_the_gateway(traced, collector):
    infer(traced, f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", rows=3, request_id="traced-1")
    server = wait_for(lambda: calls_in(collector, CALLER_TRACE))[0]
    # The caller's trace and span are the server span's parents.
    assert server.parent_span_id.hex() == CALLER_SPAN
    assert server.kind == server.SPAN_KIND_SERVER
    attrs = attributes(server)
    assert attrs["switchyard.model"] == "digits" and attrs["switchyard.version"] == "2"
    assert attrs["switchyard.route"] == "fixed" and attrs["switchyard.route_generation"] >= 1
    assert attrs["switchyard.rows"] == 3 and attrs["switchyard.request_id"] == "traced-1"
    assert attrs["switchyard.batch_size"] >= 3 and attrs["rpc.grpc.status_code"] == 0
    services = {service for service, span in collector.spans() if span.trace_id.hex() == CALLER_TRACE}
    assert services == {"switchyard-test"}
    children = wait_for(lambda: {
        span.name: span for _, span in collector.spans()
        if span.trace_id.hex() == CALLER_TRACE and span.parent_span_id == server.span_id
    } if len([1 for _, s in collector.spans() if s.parent_span_id == server.span_id]) >= len(STEPS) else None)
    assert sorted(children) == sorted(STEPS)
    # The steps follow one another inside the call.
    ordered = [children[name] for name in STEPS]
    for earlier, later in zip(ordered, ordered[1:]):
        assert earlier.end_time_unix_nano <= later.start_time_unix_nano + 1000, (earlier.name, later.name)
    assert server.start_time_unix_nano <= ordered[0].start_time_unix_nano
    assert ordered[-1].end_time_unix_nano <= server.end_time_unix_nano
    assert attributes(children["route"])["switchyard.version"] == "2"
    assert attributes(children["compute"])["switchyard.batch_size"] == attrs["switchyard.batch_size"]
    # swift-otel's exports are counted as they happen.
    exported = wait_for(lambda: metrics(traced)["switchyard_trace_spans_exported_total"] >= 1 + len(STEPS))
    assert exported
    assert metrics(traced)['switchyard_trace_dropped_total{reason="export_failed"}'] == 0


def test_a_rest_calls_traceparent_header_is_followed_too(traced, collector):
    trace = "4af7651916cd43dd8448eb211c80319c"
    body = {"id": "rest-traced", "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1.0] * 64}]}
    request = urllib.request.Request(
        traced.rest_url + "/v2/models/digits/infer", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "traceparent": f"00-{trace}-{CALLER_SPAN}-01",
                 "tracestate": "vendor=opaque"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    server = wait_for(lambda: calls_in(collector, trace))[0]
    assert server.parent_span_id.hex() == CALLER_SPAN
    assert server.trace_state == "vendor=opaque"
    assert attributes(server)["switchyard.request_id"] == "rest-traced"


def test_the_shadow_run_is_a_span_linked_to_its_call(traced, collector):
    trace = "1af7651916cd43dd8448eb211c80319c"
    infer(traced, f"00-{trace}-{CALLER_SPAN}-01", request_id="shadowed")
    server = wait_for(lambda: calls_in(collector, trace))[0]
    shadows = wait_for(lambda: [
        span for _, span in collector.spans()
        if span.name == "shadow" and any(link.span_id == server.span_id for link in span.links)
    ])
    assert len(shadows) == 1
    shadow = shadows[0]
    link = next(link for link in shadow.links if link.span_id == server.span_id)
    assert link.trace_id.hex() == trace
    attrs = attributes(shadow)
    assert attrs["switchyard.version"] == "1" and attrs["switchyard.primary_version"] == "2"
    # The shadow never delays the call: it is not one of the call's children.
    assert shadow.parent_span_id != server.span_id


def test_calls_of_one_batch_share_a_batch_span_linked_to_each(traced, collector):
    traces = [f"2{index:031x}" for index in range(48)]

    def one(trace):
        infer(traced, f"00-{trace}-{CALLER_SPAN}-01", request_id=f"batched-{trace[-4:]}", version="2")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, traces))
    servers = wait_for(lambda: (lambda found: found if len(found) == len(traces) else None)(
        {span.span_id: span for _, span in collector.spans()
         if span.name == "ModelInfer" and span.trace_id.hex() in traces}))
    batches = wait_for(lambda: (lambda found: found if sum(len(b.links) for b in found) >= len(traces) else None)([
        span for _, span in collector.spans()
        if span.name == "batch" and any(link.span_id in servers for link in span.links)
    ]))
    linked = [link.span_id for batch in batches for link in batch.links]
    # Every traced call is linked from exactly one batch span, whose size is the batch its call reports.
    assert sorted(linked) == sorted(servers)
    for batch in batches:
        size = attributes(batch)["switchyard.batch_size"]
        assert size >= len(batch.links)
        for link in batch.links:
            assert attributes(servers[link.span_id])["switchyard.batch_size"] == size
            assert link.trace_id == servers[link.span_id].trace_id
    # 16 callers against one worker: calls queued together ran together at least once.
    assert max(len(batch.links) for batch in batches) >= 2, [len(b.links) for b in batches]


def test_ratio_zero_traces_no_call_of_its_own_and_skips_unsampled_parents(traced, collector):
    before = metrics(traced)["switchyard_trace_calls_total"]
    unsampled = "3af7651916cd43dd8448eb211c80319c"
    infer(traced, request_id="untraced")
    infer(traced, f"00-{unsampled}-{CALLER_SPAN}-00", request_id="unsampled")
    infer(traced, "00-not-a-traceparent-01", request_id="malformed")
    time.sleep(0.5)
    assert metrics(traced)["switchyard_trace_calls_total"] == before
    assert not calls_in(collector, unsampled)
    ids = {attributes(span).get("switchyard.request_id") for span in calls_in(collector)}
    assert not ids & {"untraced", "unsampled", "malformed"}


def test_ratio_one_traces_every_call_and_a_malformed_traceparent_starts_a_new_trace(
    start_gateway, tmp_path_factory, collector
):
    gateway = start(start_gateway, tmp_path_factory, collector.endpoint, 1)
    malformed = ["00-xyz-01", f"00-{'0' * 32}-{CALLER_SPAN}-01", f"00-{CALLER_TRACE.upper()}-{CALLER_SPAN}", "garbage"]
    for index, header in enumerate(malformed):
        infer(gateway, header, request_id=f"malformed-{index}")
    for index in range(5):
        infer(gateway, request_id=f"plain-{index}")
    wanted = {f"malformed-{i}" for i in range(len(malformed))} | {f"plain-{i}" for i in range(5)}
    spans = wait_for(lambda: (lambda found: found if set(found) >= wanted else None)(
        {attributes(span).get("switchyard.request_id"): span for span in calls_in(collector)}))
    for request_id in wanted:
        span = spans[request_id]
        # A trace of its own: new id, no parent.
        assert span.parent_span_id == b"", request_id
        assert span.trace_id.hex() not in (CALLER_TRACE, CALLER_TRACE.lower(), "0" * 32)
    assert len({spans[request_id].trace_id for request_id in wanted}) == len(wanted)
    assert metrics(gateway)["switchyard_trace_calls_total"] == len(wanted)
    gateway.stop()


def test_collector_down_leaves_calls_unaffected_and_counts_dropped_spans(start_gateway, tmp_path_factory):
    # Nothing listens on this port: every export is refused.
    down = f"http://127.0.0.1:{free_ports(1)[0]}/v1/traces"
    gateway = start(start_gateway, tmp_path_factory, down, 1)
    started = time.monotonic()
    for index in range(50):
        response = infer(gateway, request_id=f"down-{index}")
        assert [o.name for o in response.outputs] == ["logits", "probabilities"]
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    counters = wait_for(lambda: (lambda m: m if m['switchyard_trace_dropped_total{reason="export_failed"}'] > 0 else None)(
        metrics(gateway)))
    assert counters["switchyard_trace_calls_total"] == 50
    assert counters["switchyard_trace_spans_exported_total"] == 0
    gateway.stop()
    log = gateway.output()
    assert "Failed to export batch" in log, log[-2000:]


def test_admin_changes_record_the_callers_trace_id_in_the_audit_log(start_gateway, tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-trace")
    shutil.copytree(MODELS / "digits", root / "models" / "digits")
    audit = root / "audit.jsonl"
    config = root / "switchyard.yaml"
    config.write_text(f"""
routes:
  - model: digits
    policy: canary
    versions: [{{version: "1", weight: 50}}, {{version: "2", weight: 50}}]
admin:
  audit_log: {audit}
""")
    gateway = start_gateway("--config", str(config), repository=root / "models")
    wait_admin(gateway)

    def patch(weights, traceparent=None):
        request = urllib.request.Request(
            gateway.admin_url + "/v1/routes/digits/weights", data=json.dumps({"weights": weights}).encode(),
            method="PATCH", headers={"Content-Type": "application/json"})
        if traceparent is not None:
            request.add_header("traceparent", traceparent)
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    patch({"1": 10, "2": 90}, f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
    patch({"1": 20, "2": 80}, f"00-{CALLER_TRACE}-{CALLER_SPAN}-00")  # not sampled: still the caller's trace
    patch({"1": 30, "2": 70}, "00-not-a-trace-01")
    patch({"1": 40, "2": 60})
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["route.weights"] * 4
    assert [e.get("trace_id") for e in entries] == [CALLER_TRACE, CALLER_TRACE, None, None]
    gateway.stop()


def test_tracing_config_is_validated_with_key_paths(tmp_path):
    config = tmp_path / "switchyard.yaml"
    config.write_text("tracing:\n  otlp_endpoint: collector:4318\n  sample_ratio: 1.5\n")
    result = subprocess.run([binary(), "serve", "--config", str(config), "--model-repository", str(MODELS)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "tracing.otlp_endpoint: expected an http:// or https:// OTLP/HTTP traces URL" in result.stderr + result.stdout
    assert "tracing.sample_ratio: expected 0…1, got 1.5" in result.stderr + result.stdout

"""Fair sharing between tenants in a pool, through the real gateway with grpcio: a noisy tenant keeps 48 calls in flight
on a one-worker pool with a short queue while a polite tenant of the same weight sends one call at a time. The noisy
tenant's calls are the ones shed (RESOURCE_EXHAUSTED naming it), the polite tenant's all succeed, and /metrics
counts the shed calls against the noisy tenant only. No timing is asserted (the load test measures latency:
loadtest/noisy-neighbour.sh)."""

import re
import threading
import time
import urllib.request

import grpc
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import service_pb2, service_pb2_grpc


def write_mlp(path):
    """784→512→512→10, Gemm + Relu: slow enough in a debug build that one worker is what the tenants compete for."""
    rng = np.random.default_rng(7)
    sizes = [784, 512, 512, 10]
    nodes, inits, previous = [], [], "pixels"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((n_in, n_out)) * 0.05).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}")]
        out = "logits" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [out]))
        if out != "logits":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        previous = out
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def request():
    message = service_pb2.ModelInferRequest(model_name="mlp")
    message.inputs.add(name="pixels", datatype="FP32", shape=[1, 784])
    message.raw_input_contents.append(np.full((1, 784), 0.5, np.float32).tobytes())
    return message


def test_the_noisy_tenant_is_shed_and_the_polite_one_is_not(start_gateway, tmp_path):
    repo = tmp_path / "repo"
    (repo / "mlp" / "1").mkdir(parents=True)
    write_mlp(repo / "mlp" / "1" / "model.onnx")
    # A short queue: 48 noisy calls in flight overflow it, so the pool must choose whom to shed.
    (repo / "mlp" / "config.yaml").write_text("max_batch_size: 4\nworkers: 1\nslo_ms: 2000\nmax_queue_size: 16\n")
    config = tmp_path / "switchyard.yaml"
    config.write_text("tenants:\n  header: x-tenant-id\n  limits:\n    polite: {weight: 1}\n    noisy: {weight: 1}\n")
    gateway = start_gateway("--config", str(config), repository=repo)

    noisy_codes, noisy_details, stop = [], set(), threading.Event()

    def flood(stub):
        while not stop.is_set():
            try:
                stub.ModelInfer(request(), metadata=[("x-tenant-id", "noisy")], timeout=30)
                noisy_codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                noisy_codes.append(error.code())
                noisy_details.add(error.details())

    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(request(), metadata=[("x-tenant-id", "polite")], timeout=30)
        threads = [threading.Thread(target=flood, args=(stub,)) for _ in range(48)]
        for thread in threads:
            thread.start()
        try:
            # Let the flood fill the queue, then call politely, one call at a time.
            deadline = time.monotonic() + 20
            while grpc.StatusCode.RESOURCE_EXHAUSTED not in noisy_codes and time.monotonic() < deadline:
                time.sleep(0.05)
            polite = []
            for _ in range(20):
                try:
                    stub.ModelInfer(request(), metadata=[("x-tenant-id", "polite")], timeout=30)
                    polite.append((grpc.StatusCode.OK, ""))
                except grpc.RpcError as error:
                    polite.append((error.code(), error.details()))
                time.sleep(0.02)
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    assert polite == [(grpc.StatusCode.OK, "")] * 20, polite
    shed = noisy_codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert shed > 0 and noisy_codes.count(grpc.StatusCode.OK) > 0, {c: noisy_codes.count(c) for c in set(noisy_codes)}
    assert set(noisy_codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(noisy_codes)
    # Refused at a full queue, or taken out of it to make room for the polite tenant: either way named.
    assert all("queue is full" in d or "tenant 'noisy'" in d for d in noisy_details), noisy_details

    with urllib.request.urlopen(gateway.admin_url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()

    def counted(tenant, outcome):
        pattern = rf'switchyard_tenant_model_calls_total\{{tenant="{tenant}",[^}}]*outcome="{outcome}"\}} (\d+)'
        return sum(int(m) for m in re.findall(pattern, metrics))

    assert counted("noisy", "shed") == shed, metrics
    assert counted("polite", "shed") == 0 and counted("polite", "answered") == 21

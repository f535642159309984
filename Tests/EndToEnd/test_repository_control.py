"""Triton's model-control and small control RPCs against the real gateway: Seldon Core 2's control sequence with
grpcio (ServerLive → RepositoryIndex → RepositoryModelLoad → ModelInfer → RepositoryModelUnload), tritonclient's
repository, CUDA shared-memory, log and trace calls, the admin token policy on the inference port, and the audit
log entries the loads and unloads leave."""

import json
import socket

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from conftest import MODELS, Gateway, free_ports
from faults_support import copy_digits
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"], dtype=np.float32)
LABELS = np.asarray(SAMPLES["labels"])
TOKEN = "e2e-repository-token"


@pytest.fixture(scope="module")
def setup(start_gateway, tmp_path_factory):
    """A gateway whose repository holds `digits` at start; `spare` (a copy) is added to the disk afterwards."""
    root = tmp_path_factory.mktemp("repository")
    repository = copy_digits(root)
    config = root / "switchyard.yaml"
    config.write_text(f"admin:\n  audit_log: {root / 'audit.jsonl'}\n")
    gateway = start_gateway("--config", str(config), repository=repository, rest=True)
    copy_digits(root, "spare")
    return gateway, root


def index(stub, ready=False):
    response = stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=ready), timeout=10)
    return [(m.name, m.version, m.state, m.reason) for m in response.models]


def infer_request(model):
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=list(PIXELS.shape))
    del tensor
    request.raw_input_contents.append(PIXELS.tobytes())
    return request


def audit_entries(root):
    path = root / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_seldon_control_sequence(setup):
    gateway, root = setup
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live
        assert index(stub) == [
            ("digits", "1", "READY", ""),
            ("digits", "2", "READY", ""),
            ("spare", "1", "UNAVAILABLE", "unloaded"),
            ("spare", "2", "UNAVAILABLE", "unloaded"),
        ]
        assert [entry[:2] for entry in index(stub, ready=True)] == [("digits", "1"), ("digits", "2")]

        stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="spare"), timeout=60)
        assert [entry for entry in index(stub) if entry[0] == "spare"] == [
            ("spare", "1", "READY", ""),
            ("spare", "2", "READY", ""),
        ]
        # Loading a loaded model succeeds and changes nothing (the agent retries loads).
        stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="spare"), timeout=60)

        response = stub.ModelInfer(infer_request("spare"), timeout=10)
        assert response.model_name == "spare" and response.model_version == "2"
        names = [output.name for output in response.outputs]
        probabilities = np.frombuffer(response.raw_output_contents[names.index("probabilities")], dtype=np.float32)
        assert (probabilities.reshape(len(PIXELS), 10).argmax(axis=1) == LABELS).mean() >= 0.9

        stub.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(model_name="spare"), timeout=60)
        assert [entry for entry in index(stub) if entry[0] == "spare"] == [
            ("spare", "1", "UNAVAILABLE", "unloaded"),
            ("spare", "2", "UNAVAILABLE", "unloaded"),
        ]
        with pytest.raises(grpc.RpcError) as excinfo:
            stub.ModelInfer(infer_request("spare"), timeout=10)
        assert excinfo.value.code() == grpc.StatusCode.NOT_FOUND
        assert "unknown model 'spare'" in excinfo.value.details()
        # The gateway stays ready throughout: an unloaded model is not a failed one.
        assert stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready

    actions = [(e["action"], e["model"], e["version"], e["actor"]) for e in audit_entries(root)]
    assert ("model.load", "spare", "1", "anonymous") in actions
    assert ("model.load", "spare", "2", "anonymous") in actions
    assert ("model.unload", "spare", "2", "anonymous") in actions
    assert ("model.unload", "spare", "1", "anonymous") in actions
    assert all(e["reason"].endswith("over gRPC") for e in audit_entries(root) if e["model"] == "spare")


@pytest.mark.parametrize(
    "call, request_message, code, fragment",
    [
        ("RepositoryModelLoad", service_pb2.RepositoryModelLoadRequest(model_name="nothing"), "NOT_FOUND",
         "no model 'nothing' in the model repository; it holds: digits, spare"),
        ("RepositoryModelLoad", service_pb2.RepositoryModelLoadRequest(model_name=""), "INVALID_ARGUMENT",
         "model_name: expected a model name, got ''"),
        ("RepositoryModelLoad", service_pb2.RepositoryModelLoadRequest(model_name="spare", repository_name="other"),
         "INVALID_ARGUMENT", "repository_name: this server serves one model repository; expected '', got 'other'"),
        ("RepositoryModelLoad", service_pb2.RepositoryModelLoadRequest(
            model_name="spare", parameters={"config": service_pb2.ModelRepositoryParameter(string_param="{}")}),
         "INVALID_ARGUMENT", "parameters['config']: overriding a model's configuration or files on load is not"),
        ("RepositoryModelUnload", service_pb2.RepositoryModelUnloadRequest(model_name="spare"), "NOT_FOUND",
         "model 'spare' is not loaded; loaded models: digits"),
        ("RepositoryModelUnload", service_pb2.RepositoryModelUnloadRequest(
            model_name="digits", parameters={"force": service_pb2.ModelRepositoryParameter(bool_param=True)}),
         "INVALID_ARGUMENT", "parameters['force']: unknown parameter; expected only 'unload_dependents'"),
        ("RepositoryIndex", service_pb2.RepositoryIndexRequest(repository_name="x"), "INVALID_ARGUMENT",
         "repository_name: this server serves one model repository"),
    ],
)
def test_bad_repository_requests_are_refused_by_name(setup, call, request_message, code, fragment):
    gateway, _ = setup
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as excinfo:
            getattr(stub, call)(request_message, timeout=30)
        assert excinfo.value.code() == getattr(grpc.StatusCode, code), excinfo.value
        assert fragment in excinfo.value.details(), excinfo.value.details()
        assert ("digits", "2", "READY", "") in index(stub)


def test_a_flood_of_index_calls_is_bounded(setup):
    gateway, _ = setup
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        calls = [stub.RepositoryIndex.future(service_pb2.RepositoryIndexRequest(), timeout=30) for _ in range(200)]
        answered = refused = 0
        for call in calls:
            try:
                assert [m.name for m in call.result().models][:2] == ["digits", "digits"]
                answered += 1
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                assert "4 repository calls are in flight" in error.details()
                refused += 1
        assert answered + refused == 200 and answered >= 4
        assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live


def test_tritonclient_repository_calls(setup):
    gateway, _ = setup
    client = grpcclient.InferenceServerClient(gateway.address)
    try:
        listed = client.get_model_repository_index(as_json=True)["models"]
        assert {"name": "spare", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"} in listed
        client.load_model("spare")
        assert client.is_model_ready("spare", "1") and client.is_model_ready("spare", "2")
        inp = grpcclient.InferInput("pixels", list(PIXELS.shape), "FP32")
        inp.set_data_from_numpy(PIXELS)
        result = client.infer("spare", [inp], model_version="1")
        assert (result.as_numpy("probabilities").argmax(axis=1) == LABELS).mean() >= 0.9
        client.unload_model("spare", unload_dependents=True)
        assert not client.is_model_ready("spare")
        with pytest.raises(InferenceServerException) as excinfo:
            client.load_model("spare", config='{"max_batch_size": 8}')
        assert excinfo.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "parameters['config']" in excinfo.value.message()
    finally:
        client.close()


def test_tritonclient_http_repository_calls(setup):
    """The same control sequence over REST (Triton's HTTP model-repository extension), which tritonclient.http and
    HTTP-only control planes use."""
    import tritonclient.http as httpclient

    gateway, root = setup
    client = httpclient.InferenceServerClient(f"127.0.0.1:{gateway.rest_port}")
    try:
        listed = client.get_model_repository_index()
        assert {"name": "digits", "version": "1", "state": "READY"} in listed, listed
        if client.is_model_ready("spare"):  # loaded by an earlier test
            client.unload_model("spare")
        listed = client.get_model_repository_index()
        assert {"name": "spare", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"} in listed, listed
        client.load_model("spare")
        assert client.is_model_ready("spare", "1") and client.is_model_ready("spare", "2")
        inp = httpclient.InferInput("pixels", list(PIXELS.shape), "FP32")
        inp.set_data_from_numpy(PIXELS, binary_data=True)
        result = client.infer("spare", [inp], model_version="2")
        assert (result.as_numpy("probabilities").argmax(axis=1) == LABELS).mean() >= 0.9
        client.unload_model("spare", unload_dependents=True)
        assert not client.is_model_ready("spare")
        reasons = {(e["action"], e["model"], e["reason"]) for e in audit_entries(root)}
        assert ("model.load", "spare", "repository load over REST") in reasons, reasons
        assert ("model.unload", "spare", "repository unload over REST") in reasons, reasons
        with pytest.raises(InferenceServerException) as excinfo:
            client.load_model("spare", config='{"max_batch_size": 8}')
        assert excinfo.value.status() == "400" and "parameters['config']" in excinfo.value.message()
        with pytest.raises(InferenceServerException) as excinfo:
            client.unload_model("no-such-model")
        assert excinfo.value.status() == "404" and "'no-such-model' is not loaded" in excinfo.value.message()
    finally:
        client.close()


@pytest.mark.parametrize(
    "method, path, body, status, fragment",
    [
        ("POST", "/v2/repository/index", b"{not json", 400, "malformed JSON in repository index request"),
        ("POST", "/v2/repository/index", b'{"ready": "yes"}', 400, "field 'ready' has the wrong type"),
        ("POST", "/v2/repository/index", b'{"repository_name": "other"}', 400, "serves one model repository"),
        ("GET", "/v2/repository/index", b"", 405, "expected POST"),
        ("POST", "/v2/repository/models/digits/reload", b"", 404, "/v2/repository/models/{model}/load|unload"),
        ("POST", "/v2/repository/models/digits/load", b'{"parameters": {"file:1/model.onnx": "AAAA"}}', 400,
         "parameters['file:1/model.onnx']"),
        ("POST", "/v2/repository/models/digits/unload", b'{"parameters": {"unload_dependents": 3}}', 400,
         "parameters['unload_dependents']: expected bool_param"),
    ],
)
def test_bad_rest_repository_requests_name_what_was_wrong(setup, method, path, body, status, fragment):
    gateway, _ = setup
    response = requests.request(method, f"http://127.0.0.1:{gateway.rest_port}{path}", data=body, timeout=10)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"], response.json()


def test_tritonclient_cuda_trace_and_log_settings(setup):
    gateway, _ = setup
    client = grpcclient.InferenceServerClient(gateway.address)
    try:
        assert client.get_cuda_shared_memory_status(as_json=True) == {}
        client.unregister_cuda_shared_memory()  # "" = every region: nothing to do, and not an error
        client.unregister_cuda_shared_memory("never-registered")
        with pytest.raises(InferenceServerException) as excinfo:
            client.register_cuda_shared_memory("gpu0", b"\0" * 64, 0, 1024)
        assert excinfo.value.status() == "StatusCode.FAILED_PRECONDITION"
        assert "this server has no CUDA" in excinfo.value.message()

        assert client.get_trace_settings(as_json=True) == {"settings": {"trace_level": {"value": ["OFF"]}}}
        assert client.update_trace_settings(settings={"trace_level": ["OFF"]}, as_json=True)["settings"]
        with pytest.raises(InferenceServerException) as excinfo:
            client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
        assert excinfo.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "settings['trace_level']: this server does not trace requests" in excinfo.value.message()

        settings = client.get_log_settings(as_json=True)["settings"]
        assert settings["log_level"] == {"string_param": "info"}
        assert settings["log_info"] == {"bool_param": True}
        assert settings["log_file"] == {"string_param": ""}
        assert settings["log_format"] == {"string_param": "default"}
        verbose = client.update_log_settings({"log_verbose_level": 1}, as_json=True)["settings"]
        assert verbose["log_level"] == {"string_param": "debug"}
        assert verbose["log_verbose_level"] == {"uint32_param": 1}
        quiet = client.update_log_settings({"log_verbose_level": 0, "log_info": False, "log_warning": False},
                                           as_json=True)["settings"]
        assert quiet["log_level"] == {"string_param": "error"}
        back = client.update_log_settings({"log_info": True}, as_json=True)["settings"]
        assert back["log_level"] == {"string_param": "info"}
        for settings, fragment in [
            ({"log_file": "/tmp/x.log"}, "settings['log_file']: this server logs to standard error; expected ''"),
            ({"log_format": "ISO8601"}, "settings['log_format']: expected 'default' (the one format), got 'ISO8601'"),
            ({"log_colour": True}, "settings['log_colour']: unknown setting; expected one of log_error"),
        ]:
            with pytest.raises(InferenceServerException) as excinfo:
                client.update_log_settings(settings)
            assert excinfo.value.status() == "StatusCode.INVALID_ARGUMENT", settings
            assert fragment in excinfo.value.message(), excinfo.value.message()
        assert client.get_log_settings(as_json=True)["settings"]["log_level"] == {"string_param": "info"}
    finally:
        client.close()


def log_settings(stub, **settings):
    request = service_pb2.LogSettingsRequest()
    for key, value in settings.items():
        field = {bool: "bool_param", int: "uint32_param", str: "string_param"}[type(value)]
        setattr(request.settings[key], field, value)
    response = stub.LogSettings(request, timeout=10)
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in response.settings.items()}


def test_log_level_changes_what_the_gateway_logs(setup):
    gateway, _ = setup
    with grpc.insecure_channel(gateway.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert log_settings(stub)["log_level"] == "info"
        # Switchyard's own key takes every swift-log level by name.
        assert log_settings(stub, log_level="warning") == {
            "log_error": True, "log_file": "", "log_format": "default", "log_info": False, "log_level": "warning",
            "log_verbose_level": 0, "log_warning": True,
        }
        # At warning, loading a model logs nothing at info ("loaded model version"); at info it does.
        before = gateway.output().count("loaded model version")
        stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="spare"), timeout=60)
        assert gateway.output().count("loaded model version") == before
        stub.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(model_name="spare"), timeout=60)
        assert log_settings(stub, log_level="info")["log_level"] == "info"
        stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="spare"), timeout=60)
        assert gateway.output().count("loaded model version") == before + 2
        stub.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(model_name="spare"), timeout=60)
        for settings, fragment in [
            ({"log_level": "loud"}, "settings['log_level']: expected one of trace, debug, info, notice, warning"),
            ({"log_info": "yes"}, "settings['log_info']: expected bool_param"),
            ({"log_verbose_level": True}, "settings['log_verbose_level']: expected uint32_param"),
        ]:
            with pytest.raises(grpc.RpcError) as excinfo:
                log_settings(stub, **settings)
            assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert fragment in excinfo.value.details(), excinfo.value.details()
        assert log_settings(stub)["log_level"] == "info"


def non_loopback_address():
    """This machine's address on a non-loopback interface, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("token", [None, TOKEN])
def test_model_control_beyond_loopback_needs_the_admin_token(tmp_path, token):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call from")
    repository = copy_digits(tmp_path)
    config = tmp_path / "switchyard.yaml"
    config.write_text(f"admin:\n  token: {token}\n  token_name: seldon\n  audit_log: {tmp_path / 'audit.jsonl'}\n"
                      if token else f"admin:\n  audit_log: {tmp_path / 'audit.jsonl'}\n")
    port, rest, admin = free_ports(3)
    gateway = Gateway(
        ["--model-repository", str(repository), "--listen", f"0.0.0.0:{port}", "--rest-listen", f"0.0.0.0:{rest}",
         "--admin-listen", f"127.0.0.1:{admin}", "--config", str(config)],
        port, str(tmp_path / "gateway.log"),
    ).wait_listening()
    try:
        # REST follows the same policy as gRPC.
        unload_url = f"http://{address}:{rest}/v2/repository/models/digits/unload"
        response = requests.post(unload_url, timeout=30)
        if token is None:
            assert response.status_code == 403, response.text
            assert "needs the admin token, and none is configured" in response.json()["error"]
        else:
            assert response.status_code == 401, response.text
            assert "missing admin token" in response.json()["error"]
            response = requests.post(unload_url, headers={"Authorization": "Bearer wrong"}, timeout=30)
            assert response.status_code == 401 and "invalid bearer token" in response.json()["error"], response.text
        index_url = f"http://{address}:{rest}/v2/repository/index"
        assert {"name": "digits", "version": "2", "state": "READY"} in requests.post(index_url, timeout=10).json()
        with grpc.insecure_channel(f"{address}:{port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            unload = service_pb2.RepositoryModelUnloadRequest(model_name="digits")
            with pytest.raises(grpc.RpcError) as excinfo:
                stub.RepositoryModelUnload(unload, timeout=30)
            if token is None:
                assert excinfo.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "needs the admin token, and none is configured" in excinfo.value.details()
            else:
                assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "missing admin token: send metadata 'authorization: Bearer <token>'" in excinfo.value.details()
                with pytest.raises(grpc.RpcError) as excinfo:
                    stub.RepositoryModelUnload(unload, timeout=30, metadata=[("authorization", "Bearer wrong")])
                assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "invalid bearer token" in excinfo.value.details()
            # The index is a read, like ModelMetadata: it needs no token.
            assert ("digits", "1", "READY", "") in index(stub)
            assert ("digits", "2", "READY", "") in index(stub)
            if token:
                stub.RepositoryModelUnload(unload, timeout=30, metadata=[("authorization", f"Bearer {token}")])
                assert ("digits", "2", "UNAVAILABLE", "unloaded") in index(stub)
                stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="digits"), timeout=60,
                                         metadata=[("authorization", f"Bearer {token}")])
                assert ("digits", "2", "READY", "") in index(stub)
                actors = {(e["action"], e["actor"]) for e in audit_entries(tmp_path)}
                assert actors == {("model.unload", "seldon"), ("model.load", "seldon")}
            else:
                assert audit_entries(tmp_path) == []
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            if token:
                # A wrong token is refused on loopback too, as on the admin port.
                with pytest.raises(grpc.RpcError) as excinfo:
                    stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="digits"), timeout=30,
                                             metadata=[("authorization", "Bearer wrong")])
                assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # From this machine no token is needed.
            stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(model_name="digits"), timeout=60)
    finally:
        gateway.stop()

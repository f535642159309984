"""System shared memory against the real gateway: tritonclient's shm utilities register POSIX shared-memory regions,
inputs are read from them and outputs written into them (checked against onnxruntime), every bad region or tensor
parameter is refused with INVALID_ARGUMENT naming the field, regions unregistered while calls use them never hurt
the process, and perf_analyzer runs with --shared-memory=system."""

import json
import os
import threading

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from conftest import MODELS
from test_perf_analyzer import run_perf_analyzer
from tritonclient.utils import InferenceServerException

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"], dtype=np.float32)
ROWS = len(PIXELS)
OUTPUT_BYTES = ROWS * 10 * 4
PREFIX = f"/switchyard-e2e-{os.getpid()}"


def reference(version):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixels": PIXELS})))


@pytest.fixture()
def client(gateway):
    c = grpcclient.InferenceServerClient(gateway.address)
    c.unregister_system_shared_memory()
    c.unregister_cuda_shared_memory()
    yield c
    c.unregister_system_shared_memory()
    c.close()


@pytest.fixture()
def regions():
    """Shared-memory objects for the inputs (PIXELS) and both outputs, destroyed afterwards."""
    handles = {
        "input": shm.create_shared_memory_region("input", PREFIX + "-input", PIXELS.nbytes),
        "output": shm.create_shared_memory_region("output", PREFIX + "-output", 2 * OUTPUT_BYTES),
    }
    shm.set_shared_memory_region(handles["input"], [PIXELS])
    yield handles
    for handle in handles.values():
        shm.destroy_shared_memory_region(handle)


def shm_inputs(byte_size=PIXELS.nbytes, offset=0, region="input"):
    inp = grpcclient.InferInput("pixels", list(PIXELS.shape), "FP32")
    inp.set_shared_memory(region, byte_size, offset=offset)
    return [inp]


def test_inputs_and_outputs_in_shared_memory(client, regions):
    client.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
    client.register_system_shared_memory("output", PREFIX + "-output", 2 * OUTPUT_BYTES)
    status = client.get_system_shared_memory_status(as_json=True)["regions"]
    assert status["input"] == {"name": "input", "key": PREFIX + "-input", "byte_size": str(PIXELS.nbytes)}
    assert status["output"]["byte_size"] == str(2 * OUTPUT_BYTES)

    logits = grpcclient.InferRequestedOutput("logits")
    logits.set_shared_memory("output", OUTPUT_BYTES)
    probabilities = grpcclient.InferRequestedOutput("probabilities")
    probabilities.set_shared_memory("output", OUTPUT_BYTES, offset=OUTPUT_BYTES)
    result = client.infer("digits", shm_inputs(), model_version="1", outputs=[logits, probabilities])
    response = result.get_response()
    # One raw entry per output as Triton's C++ client expects, empty: the values are in the region.
    assert list(response.raw_output_contents) == [b"", b""]
    for output, offset in zip(response.outputs, [0, OUTPUT_BYTES]):
        assert output.parameters["shared_memory_region"].string_param == "output"
        assert output.parameters["shared_memory_byte_size"].int64_param == OUTPUT_BYTES
        assert output.parameters["shared_memory_offset"].int64_param == offset
        assert list(output.shape) == [ROWS, 10]
    expected = reference("1")
    got_logits = shm.get_contents_as_numpy(regions["output"], np.float32, [ROWS, 10])
    got_probabilities = shm.get_contents_as_numpy(regions["output"], np.float32, [ROWS, 10], offset=OUTPUT_BYTES)
    np.testing.assert_allclose(got_logits, expected["logits"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_probabilities, expected["probabilities"], rtol=1e-4, atol=1e-5)

    # Inputs from shared memory, outputs in the response (the two mix freely).
    result = client.infer("digits", shm_inputs(), model_version="2")
    np.testing.assert_allclose(result.as_numpy("logits"), reference("2")["logits"], rtol=1e-4, atol=1e-4)

    client.unregister_system_shared_memory("input")
    assert list(client.get_system_shared_memory_status(as_json=True)["regions"]) == ["output"]
    client.unregister_system_shared_memory()
    assert client.get_system_shared_memory_status(as_json=True) == {}


def expect_invalid(call, *fragments, status="INVALID_ARGUMENT"):
    with pytest.raises(InferenceServerException) as excinfo:
        call()
    assert excinfo.value.status() == f"StatusCode.{status}", excinfo.value
    for fragment in fragments:
        assert fragment in excinfo.value.message(), excinfo.value.message()


def test_bad_registrations_are_refused_by_field(client, regions):
    expect_invalid(lambda: client.register_system_shared_memory("x", PREFIX + "-missing", 64),
                   "key: cannot open shared-memory object", "No such file or directory")
    expect_invalid(lambda: client.register_system_shared_memory("x", PREFIX + "-input", PIXELS.nbytes + 1),
                   f"byte_size: {PIXELS.nbytes + 1} bytes from offset 0 overrun shared-memory object",
                   f"expected at most {PIXELS.nbytes}")
    expect_invalid(lambda: client.register_system_shared_memory("x", PREFIX + "-input", 4, offset=PIXELS.nbytes),
                   f"offset: {PIXELS.nbytes} is past the end of shared-memory object")
    expect_invalid(lambda: client.register_system_shared_memory("x", PREFIX + "-input", 0),
                   "byte_size: expected at least 1 byte, got 0")
    expect_invalid(lambda: client.register_system_shared_memory("", PREFIX + "-input", 4), "name: expected a region name")
    client.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
    expect_invalid(lambda: client.register_system_shared_memory("input", PREFIX + "-output", 4),
                   "name: region 'input' is already registered", status="FAILED_PRECONDITION")
    expect_invalid(lambda: client.get_system_shared_memory_status("nope"),
                   "no system shared-memory region 'nope'; registered: input", status="NOT_FOUND")
    client.unregister_system_shared_memory("never-registered")  # no error, as in Triton


def test_bad_tensor_parameters_are_refused_by_field(client, regions):
    client.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
    client.register_system_shared_memory("output", PREFIX + "-output", 2 * OUTPUT_BYTES)
    expect_invalid(lambda: client.infer("digits", shm_inputs(region="nope")),
                   "input 'pixels': parameter 'shared_memory_region': no system shared-memory region 'nope'")
    expect_invalid(lambda: client.infer("digits", shm_inputs(byte_size=PIXELS.nbytes - 4)),
                   f"input 'pixels': shared_memory_byte_size {PIXELS.nbytes - 4} does not match the "
                   f"{PIXELS.nbytes} bytes of FP32 data")
    expect_invalid(lambda: client.infer("digits", shm_inputs(offset=8)),
                   f"input 'pixels': {PIXELS.nbytes} bytes at shared_memory_offset 8 overrun region 'input'")
    expect_invalid(lambda: client.infer("digits", shm_inputs(offset=PIXELS.nbytes + 64)),
                   f"input 'pixels': shared_memory_offset {PIXELS.nbytes + 64} is outside region 'input'")
    small = grpcclient.InferRequestedOutput("logits")
    small.set_shared_memory("output", OUTPUT_BYTES - 4)
    expect_invalid(lambda: client.infer("digits", shm_inputs(), outputs=[small]),
                   f"output 'logits': shared_memory_byte_size {OUTPUT_BYTES - 4} is too small",
                   f"need {OUTPUT_BYTES} bytes")
    past = grpcclient.InferRequestedOutput("logits")
    past.set_shared_memory("output", OUTPUT_BYTES, offset=OUTPUT_BYTES + 4)
    expect_invalid(lambda: client.infer("digits", shm_inputs(), outputs=[past]),
                   f"output 'logits': {OUTPUT_BYTES} bytes at shared_memory_offset {OUTPUT_BYTES + 4} overrun "
                   "region 'output'")
    # Nothing above changed the regions, and a good call still works.
    result = client.infer("digits", shm_inputs(), model_version="1")
    np.testing.assert_allclose(result.as_numpy("logits"), reference("1")["logits"], rtol=1e-4, atol=1e-4)


def test_unregistering_regions_in_use_never_hurts_the_process(gateway, regions):
    expected = reference("2")["probabilities"]
    control = grpcclient.InferenceServerClient(gateway.address)
    control.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
    outcomes = {"ok": 0, "refused": 0}
    failures = []
    stop = threading.Event()

    def call_repeatedly():
        client = grpcclient.InferenceServerClient(gateway.address)
        try:
            while not stop.is_set():
                try:
                    result = client.infer("digits", shm_inputs())
                    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-4, atol=1e-5)
                    outcomes["ok"] += 1
                except InferenceServerException as error:
                    if error.status() != "StatusCode.INVALID_ARGUMENT" or "region 'input'" not in error.message():
                        failures.append(error)
                    outcomes["refused"] += 1
        except Exception as error:  # noqa: BLE001 - any other failure fails the test below
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=call_repeatedly) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(150):
            control.unregister_system_shared_memory("input")
            control.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    control.unregister_system_shared_memory()
    assert not failures, failures[:3]
    assert outcomes["ok"] > 0
    assert control.is_server_live() and gateway.process.poll() is None
    control.close()


def test_perf_analyzer_with_system_shared_memory(gateway, tmp_path):
    run_perf_analyzer(
        gateway.address,
        "digits",
        tmp_path / "perf.csv",
        "--shared-memory", "system",
        "--output-shared-memory-size", "4096",
        concurrency=2,
    )
    # perf_analyzer unregisters what it registered when it is done.
    client = grpcclient.InferenceServerClient(gateway.address)
    assert client.get_system_shared_memory_status(as_json=True) == {}
    client.close()


def test_registration_from_beyond_loopback_is_refused(tmp_path, regions):
    from conftest import Gateway, free_port
    from test_repository_control import non_loopback_address

    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call from")
    port = free_port()
    gateway = Gateway(
        ["--model-repository", str(MODELS), "--listen", f"0.0.0.0:{port}", "--admin-listen", f"127.0.0.1:{free_port()}"],
        port, str(tmp_path / "gateway.log"),
    ).wait_listening()
    try:
        remote = grpcclient.InferenceServerClient(f"{address}:{port}")
        expect_invalid(lambda: remote.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes),
                       "system shared memory is for clients on this machine", status="PERMISSION_DENIED")
        assert remote.get_system_shared_memory_status(as_json=True) == {}
        remote.close()
        local = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        local.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
        assert list(local.get_system_shared_memory_status(as_json=True)["regions"]) == ["input"]
        local.close()
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def two_input_gateway(start_gateway, tmp_path_factory):
    """A gateway serving `sum`: y = a + b for two [-1, 4] FP32 inputs."""
    import onnx
    from onnx import TensorProto, helper

    repository = tmp_path_factory.mktemp("two-inputs")
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "sum",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4]) for name in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repository / "sum" / "1").mkdir(parents=True)
    onnx.save(model, repository / "sum" / "1" / "model.onnx")
    (repository / "sum" / "config.yaml").write_text("max_batch_size: 8\n")
    return start_gateway(repository=repository)


@pytest.mark.parametrize("in_memory", ["a", "b"])
def test_raw_and_shared_memory_inputs_mix(two_input_gateway, in_memory):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.full((3, 4), 100, dtype=np.float32)
    handle = shm.create_shared_memory_region("operand", PREFIX + "-operand", a.nbytes)
    client = grpcclient.InferenceServerClient(two_input_gateway.address)
    try:
        shm.set_shared_memory_region(handle, [a if in_memory == "a" else b])
        client.register_system_shared_memory("operand", PREFIX + "-operand", a.nbytes)
        inputs = []
        for name, values in (("a", a), ("b", b)):
            inp = grpcclient.InferInput(name, list(values.shape), "FP32")
            if name == in_memory:
                inp.set_shared_memory("operand", values.nbytes)
            else:
                inp.set_data_from_numpy(values)
            inputs.append(inp)
        result = client.infer("sum", inputs)
        assert len(result.get_response().raw_output_contents) == 1
        np.testing.assert_array_equal(result.as_numpy("y"), a + b)
    finally:
        client.unregister_system_shared_memory()
        client.close()
        shm.destroy_shared_memory_region(handle)


def test_an_object_truncated_after_registration_is_refused_not_a_crash(client, tmp_path):
    key = PREFIX + "-shrinking"
    path = f"/dev/shm/{key.lstrip('/')}"
    with open(path, "wb") as f:
        f.write(PIXELS.tobytes())
    try:
        client.register_system_shared_memory("input", key, PIXELS.nbytes)
        os.truncate(path, 64)
        expect_invalid(lambda: client.infer("digits", shm_inputs()),
                       f"input 'pixels': region 'input' holds 64 of the {PIXELS.nbytes} bytes expected",
                       "was truncated after it was registered")
        assert client.is_server_live()
    finally:
        os.unlink(path)


@pytest.fixture(scope="module")
def rest_gateway(start_gateway):
    return start_gateway(rest=True)


def test_shared_memory_over_rest(rest_gateway, regions):
    """tritonclient.http: regions registered over REST, an input read from one and an output written into another,
    the answer saying where; bad regions named; CUDA registration refused (this server has no CUDA)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"127.0.0.1:{rest_gateway.rest_port}")
    try:
        client.unregister_system_shared_memory()
        client.unregister_cuda_shared_memory()
        client.register_system_shared_memory("input", PREFIX + "-input", PIXELS.nbytes)
        client.register_system_shared_memory("output", PREFIX + "-output", 2 * OUTPUT_BYTES)
        status = {region["name"]: region for region in client.get_system_shared_memory_status()}
        assert status["input"] == {"name": "input", "key": PREFIX + "-input", "offset": 0, "byte_size": PIXELS.nbytes}
        assert client.get_cuda_shared_memory_status() == []

        inp = httpclient.InferInput("pixels", list(PIXELS.shape), "FP32")
        inp.set_shared_memory("input", PIXELS.nbytes)
        probabilities = httpclient.InferRequestedOutput("probabilities")
        probabilities.set_shared_memory("output", OUTPUT_BYTES, offset=OUTPUT_BYTES)
        logits = httpclient.InferRequestedOutput("logits", binary_data=False)
        result = client.infer("digits", [inp], model_version="1", outputs=[probabilities, logits])
        assert result.get_output("probabilities")["parameters"] == {
            "shared_memory_region": "output", "shared_memory_byte_size": OUTPUT_BYTES,
            "shared_memory_offset": OUTPUT_BYTES,
        }
        expected = reference("1")
        got = shm.get_contents_as_numpy(regions["output"], np.float32, [ROWS, 10], offset=OUTPUT_BYTES)
        np.testing.assert_allclose(got, expected["probabilities"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(result.as_numpy("logits"), expected["logits"], rtol=1e-4, atol=1e-4)

        missing = httpclient.InferInput("pixels", list(PIXELS.shape), "FP32")
        missing.set_shared_memory("nope", PIXELS.nbytes)
        with pytest.raises(InferenceServerException) as excinfo:
            client.infer("digits", [missing])
        assert excinfo.value.status() == "400" and "'nope'" in excinfo.value.message(), excinfo.value
        with pytest.raises(InferenceServerException) as excinfo:
            client.register_cuda_shared_memory("gpu", b"handle", 0, 16)
        assert excinfo.value.status() == "400" and "this server has no CUDA" in excinfo.value.message()

        client.unregister_system_shared_memory("input")
        assert [region["name"] for region in client.get_system_shared_memory_status()] == ["output"]
        client.unregister_system_shared_memory()
        assert client.get_system_shared_memory_status() == []
    finally:
        client.close()

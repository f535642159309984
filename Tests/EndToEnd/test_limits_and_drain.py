"""Configured limits and shutdown: an oversized request gets RESOURCE_EXHAUSTED while other calls keep
working, and SIGTERM drains in-flight work and exits 0."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def test_request_size_limit(start_gateway, tmp_path):
    config = tmp_path / "switchyard.yaml"
    config.write_text("limits:\n  max_request_bytes: 4096\n")
    gw = start_gateway("--config", str(config))
    client = grpcclient.InferenceServerClient(gw.address)
    try:
        big = grpcclient.InferInput("pixels", [32, 64], "FP32")
        big.set_data_from_numpy(np.zeros((32, 64), np.float32))
        with pytest.raises(InferenceServerException) as excinfo:
            client.infer("digits", [big])
        assert excinfo.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert "4096" in excinfo.value.message()
        small = grpcclient.InferInput("pixels", [1, 64], "FP32")
        small.set_data_from_numpy(np.zeros((1, 64), np.float32))
        assert client.infer("digits", [small]).as_numpy("probabilities").shape == (1, 10)
    finally:
        client.close()


def test_invalid_configuration_is_refused_with_key_paths(tmp_path):
    import subprocess

    from conftest import binary

    config = tmp_path / "bad.yaml"
    config.write_text("threads: 0\nlimits:\n  max_concurrent_streams: 0\n")
    run = subprocess.run([binary(), "serve", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "threads: expected 1…256, got 0" in run.stderr
    assert "limits.max_concurrent_streams" in run.stderr


def test_sigterm_drains_and_exits_zero(start_gateway):
    gw = start_gateway()
    client = grpcclient.InferenceServerClient(gw.address)
    inp = grpcclient.InferInput("pixels", [1, 64], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 64), np.float32))
    assert client.infer("digits", [inp]).as_numpy("probabilities").shape == (1, 10)
    client.close()
    gw.stop(expect_code=0)
    assert "draining" in gw.output()

"""Precision per model against the real gateway: digits served with `precision: int8` in a copied repository's
config.yaml answers the samples with onnxruntime's top-1 classes; a version whose INT8 check is held to an
error it cannot meet, and bf16 where the CPU lacks AVX-512 BF16, are refused at load with the reason in the log
while the other models serve."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from conftest import MODELS

SAMPLES = json.loads((MODELS / "digits" / "samples.json").read_text())
PIXELS = np.asarray(SAMPLES["pixels"], dtype=np.float32)


def has_avx512_bf16() -> bool:
    with open("/proc/cpuinfo") as f:
        return " avx512_bf16" in f.read()


def copy_digits(root, name, extra):
    shutil.copytree(MODELS / "digits", root / name)
    config = root / name / "config.yaml"
    config.write_text(config.read_text() + extra)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision-repository")
    copy_digits(root, "digits", "precision: int8\n")
    copy_digits(root, "strict", "precision: int8\nprecision_check:\n  max_abs_error: 0.000001\n")
    copy_digits(root, "wide", "precision: bf16\n")
    return root


@pytest.fixture(scope="module")
def gateway(start_gateway, repository):
    return start_gateway(repository=repository)


@pytest.fixture()
def client(gateway):
    c = grpcclient.InferenceServerClient(gateway.address)
    yield c
    c.close()


def reference(version):
    session = ort.InferenceSession(str(MODELS / "digits" / version / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": PIXELS})[0]


@pytest.mark.parametrize("version", ["1", "2"])
def test_int8_digits_answer_onnxruntimes_classes(gateway, client, version):
    assert client.is_model_ready("digits", version), gateway.output()
    inp = grpcclient.InferInput("pixels", list(PIXELS.shape), "FP32")
    inp.set_data_from_numpy(PIXELS)
    result = client.infer("digits", [inp], model_version=version)
    name = client.get_model_metadata("digits", version).outputs[0].name
    logits = result.as_numpy(name)
    expected = reference(version)
    assert list(np.argmax(logits, axis=1)) == list(np.argmax(expected, axis=1))
    assert list(np.argmax(logits, axis=1)) == SAMPLES["labels"]
    # INT8 moves the logits a little, never by much: they span about ±20 here.
    assert np.max(np.abs(logits - expected)) < 1.0


def test_the_log_names_the_precision_kernel_and_check(gateway, client):
    assert client.is_model_ready("digits")
    loaded = [line for line in gateway.output().splitlines() if "loaded model version" in line and "model=digits " in line]
    assert len(loaded) == 2, gateway.output()
    for line in loaded:
        assert "int8 on the" in line and "kernel" in line, line
        assert "int8 against fp32 on 16 samples (samples.json): top-1 agreement 1 (min 0.99)" in line, line


def test_a_failed_check_refuses_the_version_naming_both_figures(gateway, client):
    assert not client.is_model_ready("strict")
    reasons = [line for line in gateway.output().splitlines() if "model=strict " in line and "failed to load" in line]
    assert len(reasons) == 2, gateway.output()
    for line in reasons:
        assert "top-1 agreement 1 (min 0.99)" in line and "max abs error" in line and "(max 1e-06)" in line, line
        assert "on_failure: refuse" in line, line


@pytest.mark.skipif(has_avx512_bf16(), reason="this CPU has AVX-512 BF16, so bf16 loads")
def test_bf16_is_refused_where_the_cpu_lacks_it(gateway, client):
    assert not client.is_model_ready("wide")
    reasons = [line for line in gateway.output().splitlines() if "model=wide " in line and "failed to load" in line]
    assert reasons and all("precision: bf16 needs a CPU with AVX-512 BF16" in line for line in reasons), reasons

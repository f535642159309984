"""perf_analyzer, unchanged, against the gateway: its call order (ModelMetadata, ModelConfig,
ServerMetadata, then ModelInfer) must succeed and it must measure a positive throughput, also on exported models
whose inputs are INT64 or FP16 (it builds its inputs from the datatypes ModelConfig reports)."""

import csv
import shutil
import subprocess

import pytest


def run_perf_analyzer(address, model, out, *options, concurrency=4, interval_ms=1500):
    """Runs perf_analyzer over gRPC against `address` (closed loop at `concurrency`, one measurement window
    of `interval_ms`, writing its CSV to `out`); fails the test when it fails, and answers the CSV's rows."""
    path = shutil.which("perf_analyzer")
    if path is None:
        pytest.fail("perf_analyzer is not installed; scripts/bootstrap.sh --test installs it")
    run = subprocess.run(
        [
            path,
            "-m", model,
            "-i", "grpc",
            "-u", address,
            *options,
            "--concurrency-range", str(concurrency),
            "--measurement-interval", str(interval_ms),
            "--stability-percentage", "100",
            "-f", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # perf_analyzer opens libcudart.so for any --shared-memory mode; scripts/install-triton-clients.sh puts NVIDIA's
    # CUDA runtime wheel on its library path (no GPU is needed for system shared memory).
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows and float(rows[0]["Inferences/Second"]) > 0, run.stdout
    return rows


def test_perf_analyzer_closed_loop(gateway, tmp_path):
    run_perf_analyzer(gateway.address, "digits", tmp_path / "perf.csv", "-b", "1")


EXPORTED = ["int64_features", "fp16_mlp", "sk_std_mlp_clf", "torch_real_dynamo_tabular"]


@pytest.fixture(scope="module")
def exported_gateway(start_gateway, tmp_path_factory):
    from exporter_corpus import SERVED, write_repository

    repo = tmp_path_factory.mktemp("perf-repo")
    write_repository(repo, [case for case in SERVED if case.name in EXPORTED])
    return start_gateway(repository=repo)


@pytest.mark.parametrize("model", EXPORTED)
def test_perf_analyzer_on_exported_datatypes(exported_gateway, model, tmp_path):
    run_perf_analyzer(exported_gateway.address, model, tmp_path / "perf.csv", concurrency=2, interval_ms=1000)

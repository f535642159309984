"""perf_analyzer, unchanged, against the gateway: its call order (ModelMetadata, ModelConfig,
ServerMetadata, then ModelInfer) must succeed and it must measure a positive throughput, also on exported models
whose inputs are INT64 or FP16 (it builds its inputs from the datatypes ModelConfig reports)."""

import csv
import shutil
import subprocess

import pytest


def perf_analyzer():
    path = shutil.which("perf_analyzer")
    if path is None:
        pytest.fail("perf_analyzer is not installed; scripts/bootstrap.sh --test installs it")
    return path


def test_perf_analyzer_closed_loop(gateway, tmp_path):
    out = tmp_path / "perf.csv"
    run = subprocess.run(
        [
            perf_analyzer(),
            "-m", "digits",
            "-i", "grpc",
            "-u", gateway.address,
            "-b", "1",
            "--concurrency-range", "4",
            "--measurement-interval", "1500",
            "--stability-percentage", "100",
            "-f", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows, run.stdout
    assert float(rows[0]["Inferences/Second"]) > 0


EXPORTED = ["int64_features", "fp16_mlp", "sk_std_mlp_clf", "torch_real_dynamo_tabular"]


@pytest.fixture(scope="module")
def exported_gateway(start_gateway, tmp_path_factory):
    from exporter_corpus import SERVED, write_repository

    repo = tmp_path_factory.mktemp("perf-repo")
    write_repository(repo, [case for case in SERVED if case.name in EXPORTED])
    return start_gateway(repository=repo)


@pytest.mark.parametrize("model", EXPORTED)
def test_perf_analyzer_on_exported_datatypes(exported_gateway, model, tmp_path):
    out = tmp_path / "perf.csv"
    run = subprocess.run(
        [
            perf_analyzer(),
            "-m", model,
            "-i", "grpc",
            "-u", exported_gateway.address,
            "--concurrency-range", "2",
            "--measurement-interval", "1000",
            "--stability-percentage", "100",
            "-f", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = list(csv.DictReader(out.open()))
    assert rows and float(rows[0]["Inferences/Second"]) > 0, run.stdout

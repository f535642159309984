"""perf_analyzer, unchanged, against the gateway: its call order (ModelMetadata, ModelConfig,
ServerMetadata, then ModelInfer) must succeed and it must measure a positive throughput."""

import csv
import os
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

"""A short soak (about a minute) for every test run: loadtest/soak.sh against the built gateway at a fixed,
modest rate, with a shadowed canary route writing comparison records and a bandit route. The script judges
the run (RSS flat in the second half, file descriptors and threads constant, < 1 % errors); the long runs and
their figures are in docs/soak.md."""

import os
import pathlib
import subprocess

import pytest

from conftest import ROOT, binary


def test_a_one_minute_soak_is_flat(tmp_path):
    bin_dir = pathlib.Path(binary()).parent
    if not (bin_dir / "switchyard-load").exists():
        pytest.skip(f"switchyard-load is not built in {bin_dir}; `swift build` builds it")
    run = subprocess.run(
        [str(ROOT / "loadtest" / "soak.sh"), "--seconds", "50", "--rate", "400", "--sample", "2", "--bin", str(bin_dir)],
        cwd=ROOT, env=dict(os.environ, RESULTS=str(tmp_path)), capture_output=True, text=True, timeout=150,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verdict: FLAT" in run.stdout, run.stdout
    summaries = list(tmp_path.glob("soak-*.summary.json"))
    assert len(summaries) == 1

#!/usr/bin/env python3
"""Writes the exporter corpus (Tests/EndToEnd/exporter_corpus.py) as a model repository.

  python3 scripts/make_exporter_corpus.py OUTDIR [--refused DIR] [--check]

OUTDIR/<name>/1/model.onnx (+ model.onnx.data for external-data models), OUTDIR/<name>/config.yaml and
OUTDIR/<name>/inputs.npz (sample batches, keys "batch<i>/<input name>") for every model the gateway must
serve; the models it must refuse go to DIR (default: OUTDIR-refused) with the same layout. --check runs
every served model's sample batches through onnxruntime and checks that ORT loads every refused one.
Needs numpy, onnx, onnxruntime, scikit-learn and skl2onnx (scripts/bootstrap.sh --test installs them).
"""

import argparse
import importlib
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "Tests" / "EndToEnd"))
exporter_corpus = importlib.import_module("exporter_corpus")


def check(root: pathlib.Path, refused_root: pathlib.Path) -> int:
    import onnxruntime as ort

    failures = 0
    for case in exporter_corpus.SERVED:
        folder = root / case.name
        try:
            session = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
            shapes = []
            for feeds in exporter_corpus.load_batches(folder):
                outs = session.run(None, feeds)
                shapes.append(" ".join(f"{o.dtype}{list(o.shape)}" for o in outs))
            print(f"ok      {case.name}: {shapes[-1]}")
        except Exception as error:  # noqa: BLE001 - report every model, then fail
            failures += 1
            print(f"FAILED  {case.name}: {error}")
    for case in exporter_corpus.REFUSED:
        path = refused_root / case.name / "1" / "model.onnx"
        try:
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            print(f"ort ok  {case.name} (the gateway must refuse it)")
        except Exception as error:  # noqa: BLE001
            print(f"ort err {case.name} (the gateway must refuse it): {str(error).splitlines()[0][:120]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=pathlib.Path)
    parser.add_argument("--refused", type=pathlib.Path, help="where the refused models go (default OUTDIR-refused)")
    parser.add_argument("--check", action="store_true", help="run every model through onnxruntime")
    args = parser.parse_args()
    refused = args.refused or args.outdir.with_name(args.outdir.name + "-refused")
    for folder in (args.outdir, refused):
        if folder.exists():
            shutil.rmtree(folder)
    for case in exporter_corpus.write_repository(args.outdir):
        print(f"{case.name:32} {case.exercises}")
    for case in exporter_corpus.write_refusals(refused):
        print(f"{case.name:32} refused: {case.exercises}")
    return 1 if args.check and check(args.outdir, refused) else 0


if __name__ == "__main__":
    sys.exit(main())

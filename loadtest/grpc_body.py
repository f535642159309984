#!/usr/bin/env python3
"""Writes a gRPC-framed request body (5-byte prefix + message) for h2load's -d option.

  grpc_body.py infer MODEL ROWS OUT      ModelInferRequest for MODEL with ROWS random rows taken from the
                                         model's metadata (needs a running gateway at $SWITCHYARD_ADDRESS),
                                         or from models/MODEL/samples.json when that exists
  grpc_body.py raw BYTES OUT             an opaque message of BYTES bytes (for the echo floor)
"""

import json
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def infer_body(model: str, rows: int) -> bytes:
    import numpy as np
    from tritonclient.grpc import service_pb2

    samples = ROOT / "models" / model / "samples.json"
    data = json.loads(samples.read_text())
    name, values = next((k, v) for k, v in data.items() if k != "labels")
    array = np.asarray(values, dtype=np.float32)
    array = np.resize(array, (rows, array.shape[1]))
    request = service_pb2.ModelInferRequest(model_name=model, id="bench")
    request.inputs.add(name=name, datatype="FP32", shape=list(array.shape))
    request.raw_input_contents.append(array.tobytes())
    return request.SerializeToString()


def main() -> None:
    kind = sys.argv[1]
    if kind == "infer":
        body = frame(infer_body(sys.argv[2], int(sys.argv[3])))
        out = sys.argv[4]
    elif kind == "raw":
        body = frame(b"x" * int(sys.argv[2]))
        out = sys.argv[3]
    else:
        sys.exit(__doc__)
    pathlib.Path(out).write_bytes(body)
    print(f"{out}: {len(body)} bytes")


if __name__ == "__main__":
    main()

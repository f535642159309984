#!/usr/bin/env python3
"""Prepares the socket-vs-shared-memory comparison (loadtest/shm.sh) for a 64×784 FP32 input.

  shm_setup.py model OUT_DIR            a 784→10 dense model (one Gemm: cheap, so the transport shows) as
                                        OUT_DIR/wide/1/model.onnx with max_batch_size 64
  shm_setup.py bodies OUT_DIR KEY       h2load bodies: OUT_DIR/socket.bin (the input in raw_input_contents) and
                                        OUT_DIR/shm.bin (the input and the output in system shared memory), and the
                                        shared-memory object /dev/shm/KEY holding the input and room for the output
  shm_setup.py register ADDRESS KEY     registers the object's two regions with the gateway at ADDRESS
"""

import pathlib
import struct
import sys

import numpy as np

ROWS, WIDTH, OUTPUTS = 64, 784, 10
INPUT_BYTES = ROWS * WIDTH * 4
OUTPUT_BYTES = ROWS * OUTPUTS * 4


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def model(out: pathlib.Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(784)
    w = (rng.standard_normal((WIDTH, OUTPUTS)) * 0.05).astype(np.float32)
    b = np.zeros(OUTPUTS, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w", "b"], ["logits"])], "wide784",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", OUTPUTS])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    (out / "wide" / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, out / "wide" / "1" / "model.onnx")
    (out / "wide" / "config.yaml").write_text("max_batch_size: 64\nworkers: 1\nslo_ms: 50\n")


def bodies(out: pathlib.Path, key: str) -> None:
    from tritonclient.grpc import service_pb2

    pixels = np.random.default_rng(1).random((ROWS, WIDTH), dtype=np.float32)
    socket = service_pb2.ModelInferRequest(model_name="wide", id="bench")
    socket.inputs.add(name="input", datatype="FP32", shape=[ROWS, WIDTH])
    socket.raw_input_contents.append(pixels.tobytes())
    (out / "socket.bin").write_bytes(frame(socket.SerializeToString()))

    shared = service_pb2.ModelInferRequest(model_name="wide", id="bench")
    tensor = shared.inputs.add(name="input", datatype="FP32", shape=[ROWS, WIDTH])
    tensor.parameters["shared_memory_region"].string_param = "bench_input"
    tensor.parameters["shared_memory_byte_size"].int64_param = INPUT_BYTES
    output = shared.outputs.add(name="logits")
    output.parameters["shared_memory_region"].string_param = "bench_output"
    output.parameters["shared_memory_byte_size"].int64_param = OUTPUT_BYTES
    (out / "shm.bin").write_bytes(frame(shared.SerializeToString()))

    # A POSIX shared-memory object is a file in /dev/shm on Linux: it outlives this process, unlike one made
    # with multiprocessing.shared_memory (whose resource tracker unlinks it at exit).
    pathlib.Path("/dev/shm", key.lstrip("/")).write_bytes(pixels.tobytes() + bytes(OUTPUT_BYTES))


def register(address: str, key: str) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(address)
    client.register_system_shared_memory("bench_input", key, INPUT_BYTES)
    client.register_system_shared_memory("bench_output", key, OUTPUT_BYTES, offset=INPUT_BYTES)
    client.close()


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind == "model":
        model(pathlib.Path(sys.argv[2]))
    elif kind == "bodies":
        bodies(pathlib.Path(sys.argv[2]), sys.argv[3])
    elif kind == "register":
        register(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

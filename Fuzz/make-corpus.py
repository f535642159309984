#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora under Fuzz/corpus/<target>/ (committed; rerun to refresh them).

  Fuzz/make-corpus.py                   infer-request, grpc-deframer and onnx-import seeds
  Fuzz/make-corpus.py --capture HOST:PORT
                                        also h2-connection seeds: real grpcio calls to a running gateway on
                                        HOST:PORT, recorded through a local TCP relay (the client's bytes
                                        after its connection preface)

Needs tritonclient[grpc] (its generated service_pb2) and numpy, e.g. the venv of
scripts/install-triton-clients.sh: /opt/triton-venv/bin/python Fuzz/make-corpus.py.
"""

import gzip
import json
import pathlib
import shutil
import socket
import struct
import sys
import threading
import zlib

import numpy as np
from tritonclient.grpc import service_pb2

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "Fuzz" / "corpus"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def write(target: str, name: str, data: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def frame(message: bytes, compressed: bool = False) -> bytes:
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


def pixels(rows: int) -> np.ndarray:
    data = json.loads((ROOT / "models" / "digits" / "samples.json").read_text())
    return np.resize(np.asarray(data["pixels"], dtype=np.float32), (rows, 64))


def infer_requests() -> dict[str, bytes]:
    """Real ModelInferRequest encodings: what stock clients send, and the usual mistakes."""
    requests = {}

    def request(rows=1, name="pixels", datatype="FP32", shape=None, raw=True, **fields):
        array = pixels(rows)
        message = service_pb2.ModelInferRequest(model_name="digits", id=f"seed-{rows}", **fields)
        tensor = message.inputs.add(name=name, datatype=datatype, shape=shape or list(array.shape))
        if raw:
            message.raw_input_contents.append(array.tobytes())
        else:
            tensor.contents.fp32_contents.extend(array.ravel().tolist())
        return message

    requests["raw-1row"] = request(1)
    requests["raw-4rows"] = request(4)
    requests["raw-64rows"] = request(64)
    requests["typed-2rows"] = request(2, raw=False)
    with_outputs = request(3, model_version="1")
    with_outputs.outputs.add(name="probabilities")
    with_outputs.outputs.add(name="logits")
    requests["outputs-version"] = with_outputs
    params = request(2)
    params.parameters["timeout"].int64_param = 50_000
    params.parameters["priority"].uint64_param = 2
    params.parameters["user"].string_param = "user-7"
    params.parameters["flag"].bool_param = True
    requests["parameters"] = params
    requests["wrong-shape"] = request(2, shape=[2, 63])
    requests["wrong-name"] = request(1, name="image")
    requests["wrong-type"] = request(1, datatype="FP64")
    ints = request(1, raw=False)
    ints.inputs[0].contents.ClearField("fp32_contents")
    ints.inputs[0].contents.int_contents.extend(range(64))
    requests["int-contents"] = ints
    requests["too-many-rows"] = request(65)
    return {name: message.SerializeToString() for name, message in requests.items()}


def control_requests() -> dict[str, bytes]:
    return {
        "model-metadata": service_pb2.ModelMetadataRequest(name="digits", version="2").SerializeToString(),
        "model-ready": service_pb2.ModelReadyRequest(name="digits").SerializeToString(),
        "model-config": service_pb2.ModelConfigRequest(name="digits").SerializeToString(),
        "model-statistics": service_pb2.ModelStatisticsRequest(name="digits", version="1").SerializeToString(),
        "model-unknown": service_pb2.ModelMetadataRequest(name="nope").SerializeToString(),
    }


def deframer_seeds(messages: dict[str, bytes]) -> None:
    one = messages["raw-4rows"]
    bomb = b"\0" * (1 << 20)
    seeds = {
        # control byte: bits 0-2 pick the chunking, bit 7 gzip (else deflate) for compressed messages
        "plain": bytes([0x03]) + frame(one),
        "plain-bytewise": bytes([0x00]) + frame(one),
        "two-messages": bytes([0x05]) + frame(one) + frame(messages["typed-2rows"]),
        "empty-message": bytes([0x01]) + frame(b"") + frame(b"x"),
        "gzip": bytes([0x86]) + frame(gzip.compress(one), compressed=True),
        "deflate": bytes([0x06]) + frame(zlib.compress(one), compressed=True),
        "gzip-bomb": bytes([0x87]) + frame(gzip.compress(bomb), compressed=True),
        "deflate-bomb": bytes([0x07]) + frame(zlib.compress(bomb), compressed=True),
        "truncated": bytes([0x02]) + frame(one)[:100],
        "too-large": bytes([0x03]) + struct.pack(">BI", 0, 1 << 24) + b"abc",
        "bad-flag": bytes([0x03]) + struct.pack(">BI", 2, 3) + b"abc",
    }
    for name, data in seeds.items():
        write("grpc-deframer", name, data)


def onnx_seeds() -> None:
    files = sorted((ROOT / "models").glob("*/*/model.onnx"))
    files += sorted((ROOT / "Tests" / "SwitchyardEngineTests" / "Fixtures").glob("*.onnx"))
    for path in files:
        name = "-".join(path.relative_to(ROOT).parts[-3:]) if path.name == "model.onnx" else path.name
        directory = CORPUS / "onnx-import"
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, directory / name)


def capture(address: str) -> None:
    """Records what grpcio sends for a few real calls, one connection per call, through a TCP relay."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    host, port = address.rsplit(":", 1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    relay_port = listener.getsockname()[1]
    recorded: list[bytes] = []

    def relay_one():
        client, _ = listener.accept()
        upstream = socket.create_connection((host, int(port)))
        received = bytearray()

        def pump(source, sink, record):
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    try:
                        sink.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                if record is not None:
                    record.extend(data)
                sink.sendall(data)

        threads = [
            threading.Thread(target=pump, args=(client, upstream, received)),
            threading.Thread(target=pump, args=(upstream, client, None)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        client.close()
        upstream.close()
        recorded.append(bytes(received))

    messages = infer_requests()
    calls = {
        "modelinfer": lambda stub: stub.ModelInfer(service_pb2.ModelInferRequest.FromString(messages["raw-4rows"])),
        "modelinfer-gzip": lambda stub: stub.ModelInfer(
            service_pb2.ModelInferRequest.FromString(messages["parameters"]), compression=grpc.Compression.Gzip
        ),
        "modelinfer-invalid": lambda stub: stub.ModelInfer(
            service_pb2.ModelInferRequest.FromString(messages["wrong-shape"])
        ),
        "modelstreaminfer": lambda stub: list(
            stub.ModelStreamInfer(
                iter([service_pb2.ModelInferRequest.FromString(messages[k]) for k in ("raw-1row", "typed-2rows")])
            )
        ),
        "modelinfer-deadline-metadata": lambda stub: stub.ModelInfer(
            service_pb2.ModelInferRequest.FromString(messages["raw-1row"]),
            timeout=5,
            metadata=[("x-user-id", "u1")],
        ),
    }
    for name, call in calls.items():
        thread = threading.Thread(target=relay_one)
        thread.start()
        with grpc.insecure_channel(f"127.0.0.1:{relay_port}") as channel:
            try:
                call(service_pb2_grpc.GRPCInferenceServiceStub(channel))
            except grpc.RpcError as error:
                print(f"{name}: {error.code()}")
        thread.join(timeout=10)
        data = recorded.pop()
        assert data.startswith(PREFACE), f"{name}: no client preface"
        body = data[len(PREFACE) :]
        # control byte: bits 0-1 pick the chunk size (1, 7, 64 bytes or whole)
        write("h2-connection", name, bytes([0x03]) + body)
        if name == "modelinfer":
            write("h2-connection", name + "-bytewise", bytes([0x00]) + body)
    listener.close()


def main() -> None:
    messages = infer_requests()
    for name, message in {**messages, **control_requests()}.items():
        write("infer-request", name, message)
    deframer_seeds(messages)
    onnx_seeds()
    if len(sys.argv) == 3 and sys.argv[1] == "--capture":
        capture(sys.argv[2])


if __name__ == "__main__":
    main()

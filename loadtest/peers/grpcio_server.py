#!/usr/bin/env python3
"""A plain grpcio server speaking the KServe v2 / Open Inference Protocol for one ONNX model with onnxruntime:
the baseline a team would write by hand. No batching: each call runs the model on its own rows.

  grpcio_server.py --model NAME --onnx FILE [--port 8001] [--workers 8] [--intra-op-threads 1]

Serves ServerLive/Ready, ServerMetadata, ModelReady, ModelMetadata, ModelConfig (the subset perf_analyzer
needs) and ModelInfer with FP32 tensors in raw_input_contents or typed contents.
"""

import argparse
import concurrent.futures

import grpc
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc


class Service(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, name, path, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.name = name
        self.inputs = self.session.get_inputs()
        self.outputs = self.session.get_outputs()

    def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name == self.name)

    def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name="grpcio-onnxruntime", version="1", extensions=[])

    def _check(self, name, context):
        if name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{name}'; available: {self.name}")

    def ModelMetadata(self, request, context):
        self._check(request.name, context)
        def meta(t):
            return service_pb2.ModelMetadataResponse.TensorMetadata(
                name=t.name, datatype="FP32", shape=[-1 if not isinstance(d, int) else d for d in t.shape])
        return service_pb2.ModelMetadataResponse(
            name=self.name, versions=["1"], platform="onnxruntime_onnx",
            inputs=[meta(t) for t in self.inputs], outputs=[meta(t) for t in self.outputs])

    def ModelConfig(self, request, context):
        self._check(request.name, context)
        def dims(t):
            return [d for d in t.shape[1:]]
        config = model_config_pb2.ModelConfig(name=self.name, platform="onnxruntime_onnx", max_batch_size=64)
        for t in self.inputs:
            config.input.add(name=t.name, data_type=model_config_pb2.TYPE_FP32, dims=dims(t))
        for t in self.outputs:
            config.output.add(name=t.name, data_type=model_config_pb2.TYPE_FP32, dims=dims(t))
        return service_pb2.ModelConfigResponse(config=config)

    def ModelInfer(self, request, context):
        self._check(request.model_name, context)
        feeds = {}
        for i, tensor in enumerate(request.inputs):
            if tensor.datatype != "FP32":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input '{tensor.name}': expected FP32, got {tensor.datatype}")
            if request.raw_input_contents:
                array = np.frombuffer(request.raw_input_contents[i], dtype=np.float32)
            else:
                array = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
            feeds[tensor.name] = array.reshape(list(tensor.shape))
        try:
            results = self.session.run(None, feeds)
        except Exception as error:  # onnxruntime reports shape errors as generic exceptions
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        response = service_pb2.ModelInferResponse(model_name=self.name, model_version="1", id=request.id)
        wanted = {o.name for o in request.outputs}
        for spec, value in zip(self.outputs, results):
            if wanted and spec.name not in wanted:
                continue
            response.outputs.add(name=spec.name, datatype="FP32", shape=list(value.shape))
            response.raw_output_contents.append(np.ascontiguousarray(value, dtype=np.float32).tobytes())
        return response


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    args = parser.parse_args()
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.workers),
        options=[("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)],
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Service(args.model, args.onnx, args.intra_op_threads), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"grpcio server for '{args.model}' on 127.0.0.1:{args.port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

"""An MLServer runtime that serves an ONNX model with onnxruntime (CPU), for the peer comparison.

MLServer does the Open Inference Protocol, adaptive batching (max_batch_size / max_batch_time in
model-settings.json) and the worker processes; this class only loads the model and runs a (batched) request.
The ONNX file is `parameters.uri` in model-settings.json, relative to the model folder.
"""

import os

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        uri = self.settings.parameters.uri if self.settings.parameters else None
        if not uri:
            raise ValueError("model-settings.json: parameters.uri must name the .onnx file")
        path = uri if os.path.isabs(uri) else os.path.join(os.path.dirname(self.settings._source or "."), uri)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("PEER_INTRA_OP_THREADS", "1"))
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]

        def shape(t):
            return [-1 if not isinstance(d, int) else d for d in t.shape]

        self.inputs = [MetadataTensor(name=t.name, datatype="FP32", shape=shape(t)) for t in self._session.get_inputs()]
        self.outputs = [MetadataTensor(name=t.name, datatype="FP32", shape=shape(t)) for t in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {t.name: NumpyCodec.decode_input(t).astype(np.float32, copy=False) for t in payload.inputs}
        results = self._session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name, value) for name, value in zip(self._outputs, results)],
        )

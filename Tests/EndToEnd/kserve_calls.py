"""Calls the gateway with the KServe Python client, in a process of its own: the `kserve` package registers the
v2 protocol's messages (inference.ServerLiveRequest, …) in protobuf's default pool under its own file name, and so
does tritonclient, so the two cannot be imported into one process. test_kserve_client.py runs this script and
reads the JSON line it prints.

    python kserve_calls.py rest BASE_URL | grpc ADDRESS | code ADDRESS VERSION [TENANT]
"""

import asyncio
import json
import pathlib
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"
PIXELS = np.asarray(json.loads((MODELS / "digits" / "samples.json").read_text())["pixels"][:8], dtype=np.float32)


def infer_request(version=""):
    tensor = InferInput(name="pixels", shape=list(PIXELS.shape), datatype="FP32")
    tensor.set_data_from_numpy(PIXELS)
    request = InferRequest(model_name="digits", infer_inputs=[tensor], request_id="kserve-1")
    if version:
        request.model_version = version
    return request


def answer(response):
    probabilities = response.outputs[[o.name for o in response.outputs].index("probabilities")].as_numpy()
    return {"model_name": response.model_name, "model_version": response.model_version, "id": response.id,
            "probabilities": probabilities.reshape(len(PIXELS), -1).tolist()}


async def rest(base):
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        health = [await client.is_server_live(base), await client.is_server_ready(base),
                  await client.is_model_ready(base, "digits")]
        return {"health": health, **answer(await client.infer(base, infer_request(), model_name="digits"))}
    finally:
        await client.close()


async def grpc(address):
    client = InferenceGRPCClient(address, timeout=30)
    try:
        health = [await client.is_server_live(), await client.is_server_ready(), await client.is_model_ready("digits")]
        return {"health": health, **answer(await client.infer(infer_request()))}
    finally:
        await client.close()


async def code(address, version, tenant=None):
    """One call with the client's default retry policy (3 attempts on UNAVAILABLE); the status it ends with."""
    client = InferenceGRPCClient(address, timeout=30)
    try:
        await client.infer(infer_request(version), headers=[("x-tenant-id", tenant)] if tenant else None)
        return {"code": "OK"}
    except Exception as error:  # noqa: BLE001 - grpc.aio.AioRpcError
        return {"code": error.code().name}
    finally:
        await client.close()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    print(json.dumps(asyncio.run({"rest": rest, "grpc": grpc, "code": code}[mode](*args))))

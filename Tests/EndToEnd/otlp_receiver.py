"""A real OTLP/HTTP trace receiver for the tests: decodes each `ExportTraceServiceRequest` (protobuf, the
OpenTelemetry protocol's own messages from the opentelemetry-proto package) posted to /v1/traces and keeps its
spans, as a collector would."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Receiver:
    """Listens on 127.0.0.1:`port` until `close()`; `spans()` is every span received so far, flattened, each
    with its resource's `service.name` under `service`."""

    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}/v1/traces"
        self.requests = 0
        self._spans = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404 if self.path != "/v1/traces" else 415)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.requests += 1
                    for resource_spans in request.resource_spans:
                        service = next(
                            (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"),
                            "",
                        )
                        for scope in resource_spans.scope_spans:
                            for span in scope.spans:
                                receiver._spans.append((service, span))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def spans(self):
        with self._lock:
            return list(self._spans)

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def attributes(span) -> dict:
    """A span's attributes as a plain dict (string, int, double or bool values)."""
    out = {}
    for attribute in span.attributes:
        value = attribute.value
        out[attribute.key] = getattr(value, value.WhichOneof("value"))
    return out

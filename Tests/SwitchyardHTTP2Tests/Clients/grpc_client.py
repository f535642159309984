#!/usr/bin/env python3
"""A stock grpcio client for the front end's end-to-end tests. Each mode prints one JSON object."""
import argparse
import json
import socket
import ssl
import struct
import time

import grpc


def channel_for(args):
    options = [
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
        ("grpc.enable_retries", 0),
    ]
    if args.tls_ca:
        root = open(args.tls_ca, "rb").read()
        key = open(args.client_key, "rb").read() if args.client_key else None
        cert = open(args.client_cert, "rb").read() if args.client_cert else None
        creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
        options.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(args.target, creds, options=options)
    return grpc.insecure_channel(args.target, options=options)


def payload(args):
    if args.zeros is not None:
        return bytes(args.zeros)
    if args.text is not None:
        return args.text.encode("utf-8")
    return bytes((i * 7 + 3) % 251 for i in range(args.size))


def describe(error):
    return {"code": error.code().name, "details": error.details(), "trailers": dict(error.trailing_metadata() or ())}


def unary(args):
    channel = channel_for(args)
    call = channel.unary_unary(args.path, request_serializer=None, response_deserializer=None)
    request = payload(args)
    kwargs = {"timeout": args.timeout, "metadata": [tuple(m.split("=", 1)) for m in args.metadata]}
    if args.gzip:
        kwargs["compression"] = grpc.Compression.Gzip
    if args.deflate:
        kwargs["compression"] = grpc.Compression.Deflate
    results = []
    for _ in range(args.repeat):
        try:
            response, info = call.with_call(request, **kwargs)
            results.append({"code": "OK", "echoed": response == request, "length": len(response),
                            "trailers": dict(info.trailing_metadata() or ())})
        except grpc.RpcError as error:
            results.append(describe(error))
    return results[0] if args.repeat == 1 else {"results": results}


def stream(args):
    channel = channel_for(args)
    call = channel.stream_stream(args.path, request_serializer=None, response_deserializer=None)
    requests = [f"msg-{i}-".encode() + bytes(i % 50) for i in range(args.count)]
    try:
        responses = list(call(iter(requests), timeout=args.timeout))
        return {"code": "OK", "count": len(responses), "echoed": responses == requests}
    except grpc.RpcError as error:
        return describe(error)


def cancel(args):
    channel = channel_for(args)
    call = channel.unary_unary(args.path, request_serializer=None, response_deserializer=None)
    future = call.future(payload(args))
    time.sleep(args.after)
    future.cancel()
    try:
        future.result()
        return {"code": "OK"}
    except grpc.FutureCancelledError:
        # Give the RST_STREAM time to leave before the process exits.
        time.sleep(0.3)
        return {"code": "CANCELLED"}
    except grpc.RpcError as error:
        return describe(error)


def garbage(args):
    """Speaks broken HTTP/2 (a DATA frame on stream 0) and reports whether a GOAWAY came back."""
    host, port = args.target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    if args.tls_ca:
        context = ssl.create_default_context(cafile=args.tls_ca)
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0))
    sock.sendall(struct.pack(">I", 4)[1:] + b"\x00\x00" + struct.pack(">I", 0) + b"boom")
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        return {"goaway": False, "closed": False}
    except (ssl.SSLError, ConnectionResetError):
        pass
    frames = []
    offset = 0
    while offset + 9 <= len(received):
        length = int.from_bytes(received[offset:offset + 3], "big")
        frames.append(received[offset + 3])
        offset += 9 + length
    return {"goaway": 7 in frames, "closed": True}


def frame(kind, flags, stream_id, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


def literal(name, value):
    # HPACK literal header field without indexing, new name, no Huffman (lengths < 127).
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def noread(args):
    """Sends echo requests and never reads. Within HTTP/2 flow control (default): 28 streams of 512 KiB,
    all the server's windows allow without a WINDOW_UPDATE. With --flood: one stream, ignoring flow
    control (a protocol violation). The server must bound what it buffers and close the connection."""
    host, port = args.target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    window = 2**31 - 1
    headers = b"".join(literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", args.path.encode()),
        (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                 + frame(4, 0, 0, (4).to_bytes(2, "big") + window.to_bytes(4, "big"))
                 + frame(8, 0, 0, (window - 65535).to_bytes(4, "big")))
    message = bytes(16379)
    streams = [1] if args.flood else list(range(1, 57, 2))
    per_stream = None if args.flood else 32  # 32 frames of 16 KiB = 512 KiB per stream
    for stream_id in streams:
        sock.sendall(frame(1, 4, stream_id, headers))
    sock.settimeout(2)
    sent = 0
    blocked = False
    start = time.time()
    try:
        if args.flood:
            data = frame(0, 0, 1, b"\x00" + len(message).to_bytes(4, "big") + message)
            while time.time() - start < 30:
                sock.sendall(data)
                sent += len(data)
        else:
            for _ in range(per_stream):
                for stream_id in streams:
                    data = frame(0, 0, stream_id, b"\x00" + len(message).to_bytes(4, "big") + message)
                    sock.sendall(data)
                    sent += len(data)
    except TimeoutError:
        blocked = True
    except OSError:
        pass
    time.sleep(args.stall)  # still not reading
    received = 0
    closed = False
    sock.settimeout(args.timeout)
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                closed = True
                break
            received += len(chunk)
    except TimeoutError:
        pass
    except OSError:
        closed = True
    return {"sent": sent, "blocked": blocked, "closed": closed, "received": received,
            "seconds": round(time.time() - start, 2)}


def hangup(args):
    """Asks for big echoes on many streams, then closes at once without reading: the server's writes then
    hit a reset socket (EPIPE), which must not take the process down."""
    host, port = args.target.rsplit(":", 1)
    headers = b"".join(literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", args.path.encode()),
        (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    for _ in range(args.repeat):
        sock = socket.create_connection((host, int(port)))
        sock.settimeout(5)
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
        sock.recv(65536)  # the server's SETTINGS (1 MiB stream windows) and connection WINDOW_UPDATE
        out = frame(4, 1, 0, b"")
        for stream_id in range(1, 2 * args.count, 2):
            message = bytes(args.size)
            body = b"\x00" + len(message).to_bytes(4, "big") + message
            out += frame(1, 4, stream_id, headers)
            for offset in range(0, len(body), 16384):
                chunk = body[offset:offset + 16384]
                flags = 1 if offset + 16384 >= len(body) else 0
                out += frame(0, flags, stream_id, chunk)
        sock.sendall(out)
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return {"done": True}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["unary", "stream", "cancel", "garbage", "noread", "hangup"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--path", default="/test.Test/Echo")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--text")
    parser.add_argument("--zeros", type=int)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--deflate", action="store_true")
    parser.add_argument("--metadata", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--after", type=float, default=0.3)
    parser.add_argument("--flood", action="store_true")
    parser.add_argument("--stall", type=float, default=0)
    parser.add_argument("--tls-ca")
    parser.add_argument("--client-cert")
    parser.add_argument("--client-key")
    args = parser.parse_args()
    result = {"unary": unary, "stream": stream, "cancel": cancel, "garbage": garbage, "noread": noread, "hangup": hangup}[args.mode](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

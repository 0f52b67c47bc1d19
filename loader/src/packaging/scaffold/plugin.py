#!/usr/bin/env python3
"""A plg plugin in Python: reads `name` (default "world") and sets `greeting`, like the
`hello` Rust sample. It follows PROTOCOL.md: check the magic cookie, serve plg.v1.Plugin and
grpc.health.v1.Health on a Unix socket, print one handshake line on stdout, log to stderr.

Needs grpcio, grpcio-tools and grpcio-health-checking (pip install them).
"""

import json
import os
import sys
import tempfile
import threading
import time
from concurrent import futures

COOKIE_KEY = "PLG_PLUGIN_MAGIC_COOKIE"
COOKIE_VALUE = "d5e1c0f4b2a7plg"
NAME, VERSION = "greet-python", "0.1.0"


def log(level, message):
    """One hclog-shaped JSON line on stderr: the host keeps its level."""
    line = {"@level": level, "@message": message, "@timestamp": time.time()}
    print(json.dumps(line), file=sys.stderr, flush=True)


if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
    print("This is a plg plugin: run it through plg (plg run greet-python), not by hand.",
          file=sys.stderr)
    sys.exit(1)

# Anything printed by accident goes to stderr: stdout carries the handshake line only.
handshake_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

import grpc  # noqa: E402  (after the cookie check: a hand run fails fast)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "proto"))
protos, services = grpc.protos_and_services("plg/v1/plugin.proto")


def to_python(value):
    kind = value.WhichOneof("kind")
    if kind in (None, "null"):
        return None
    if kind == "list":
        return [to_python(v) for v in value.list.items]
    if kind == "map":
        return {e.key: to_python(e.value) for e in value.map.entries}
    return getattr(value, kind)


def to_wire(obj):
    if obj is None:
        return protos.Value(null=True)
    if isinstance(obj, bool):
        return protos.Value(bool=obj)
    if isinstance(obj, int):
        return protos.Value(int=obj)
    if isinstance(obj, float):
        return protos.Value(float=obj)
    if isinstance(obj, str):
        return protos.Value(str=obj)
    if isinstance(obj, (bytes, bytearray)):
        return protos.Value(bytes=bytes(obj))
    if isinstance(obj, list):
        return protos.Value(list=protos.ValueList(items=[to_wire(v) for v in obj]))
    if isinstance(obj, dict):
        return protos.Value(map=map_to_wire(obj))
    raise TypeError(f"cannot send a {type(obj).__name__}")


def map_to_wire(values):
    return protos.ValueMap(entries=[protos.Entry(key=k, value=to_wire(v)) for k, v in values.items()])


def execute(values, label):
    """The plugin itself: what a Rust plugin's `execute(ctx)` does."""
    name = values.get("name", "world")
    if not isinstance(name, str):
        raise ValueError(f"`name` must be a string, got {type(name).__name__}")
    log("info", f"greeting {name}")
    values["greeting"] = f"Hello, {name}!"
    return values


class Plugin(services.PluginServicer):
    def __init__(self, stop):
        self.stop = stop

    def Describe(self, request, context):
        return protos.DescribeResponse(name=NAME, version=VERSION, protocol_version=1)

    def Execute(self, request, context):
        values = {e.key: to_python(e.value) for e in request.values.entries}
        try:
            values = execute(values, request.label)
        except ValueError as e:
            kind = protos.PluginError.Kind.Value("INVALID_INPUT")
            return protos.ExecuteResponse(error=protos.PluginError(kind=kind, message=str(e)))
        except Exception as e:  # the plugin's own failure, reported, not a crash
            kind = protos.PluginError.Kind.Value("FAILED")
            return protos.ExecuteResponse(error=protos.PluginError(kind=kind, message=str(e)))
        return protos.ExecuteResponse(values=map_to_wire(values))

    def Shutdown(self, request, context):
        threading.Timer(0.01, self.stop.set).start()
        return protos.ShutdownResponse()


def main():
    stop = threading.Event()
    socket_dir = tempfile.mkdtemp(prefix="plg-python-")
    socket = os.path.join(socket_dir, "plugin.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    services.add_PluginServicer_to_server(Plugin(stop), server)
    checker = health.HealthServicer()
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port("unix:" + socket)
    server.start()
    handshake_out.write(f"1|1|unix|{socket}|grpc\n")
    handshake_out.flush()
    stop.wait()
    server.stop(grace=2).wait()
    os.unlink(socket)
    os.rmdir(socket_dir)


if __name__ == "__main__":
    main()

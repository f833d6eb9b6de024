"""Starting and stopping `tfc serve`: Ray (a local one, or the cluster `address` names), Serve's HTTP proxy
on host:port, the model's application with its replicas, batching and overload limits; then it waits for
SIGINT or SIGTERM and takes down what it started (the application; the local Ray with it).

Overload is refused, not queued without end: a replica takes at most `max_ongoing_requests` at once
(twice the batch by default, so a batch can fill while the last one computes), and the proxy holds at most
`max_queued_requests` more; past that a request gets 429 Too Many Requests with a Retry-After header."""
from __future__ import annotations

import math
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

APP = "tfc"
# Ray would report usage over the network and size its object store to a third of memory: neither is wanted
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
OBJECT_STORE_BYTES = 256 * 2 ** 20  # requests and answers pass through it; the model stays in each replica


@dataclass(frozen=True)
class Settings:
    model: str
    replicas: int = 1
    max_batch_size: int = 8
    batch_wait_ms: float = 5.0
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    threads: int | None = None  # onnxruntime intra-op threads per replica (default: the cores shared out)
    replica_cpus: float = 1.0
    max_ongoing_requests: int | None = None
    max_queued_requests: int = 256

    @property
    def ongoing(self) -> int:
        return self.max_ongoing_requests or 2 * self.max_batch_size

    @property
    def intra_op_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.replicas)


def check_port(host: str, port: int) -> None:
    """A port in use fails here, with its reason, instead of inside Serve's proxy."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise OSError(f"cannot serve on {host}:{port}: {error.strerror}") from None


def application(settings: Settings):
    """The Serve application: `ModelServer` replicas with the settings' batching and limits."""
    from ray import serve
    from ray.serve.config import BackpressureConfig

    from .app import ModelServer

    deployment = serve.deployment(ModelServer, name="model").options(
        num_replicas=settings.replicas, max_ongoing_requests=settings.ongoing,
        max_queued_requests=settings.max_queued_requests,
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1),
        ray_actor_options={"num_cpus": settings.replica_cpus}, max_constructor_retry_count=2,
        health_check_period_s=2.0)
    return deployment.bind(str(Path(settings.model).resolve()), settings.max_batch_size,
                           settings.batch_wait_ms / 1e3, settings.intra_op_threads)


def serve_forever(settings: Settings, announce=print) -> None:
    """Starts everything, calls ``announce`` with one line saying where, blocks until SIGINT/SIGTERM, stops."""
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    import ray
    from ray import serve

    if settings.address is None:
        check_port(settings.host, settings.port)
    cpus = max(os.cpu_count() or 1, math.ceil(settings.replicas * settings.replica_cpus))
    # a local Ray talks over the loopback only
    local = dict(num_cpus=cpus, object_store_memory=OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1") \
        if settings.address is None else {}
    ray.init(address=settings.address, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             **local)
    stop = threading.Event()
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(application(settings), name=APP, route_prefix="/")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        announce(f"serving {settings.model} at http://{settings.host}:{settings.port} "
                 f"({settings.replicas} replica(s), batches of up to {settings.max_batch_size} rows, "
                 f"{settings.batch_wait_ms:g} ms wait; ray at {ray.get_runtime_context().gcs_address})")
        while not stop.wait(0.5):  # a timed wait: the signal handlers run between waits
            pass
    finally:
        try:
            if settings.address is not None:  # a local Ray goes down whole, Serve with it
                serve.delete(APP)
        finally:
            ray.shutdown()

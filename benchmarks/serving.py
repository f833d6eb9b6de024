"""Serving on this machine (issue 23): requests per second and p50 / p99 latency of BERT-base and GPT-2 small
(random weights, specs/bert-base.yaml and specs/gpt2-small.yaml) at 1, 8 and 32 concurrent clients, two ways:

  (a) plain      the model behind Python's http.server, one request at a time (this script, --plain-server):
                 `tfc_runtime.Model.run` on each request's rows, as a first deployment would do it
  (b) tfc serve  `tfc serve` on Ray Serve: dynamic batching (rows of different lengths padded with their mask
                 and cut back), --replicas replicas sharing the cores, --max-batch-size, --batch-wait-ms

Both take the same body (`{"inputs": {...}, "last_token": ...}`: one row of 16..128 tokens, lengths drawn
with a seed, the same sequence for both) and give the same JSON; for GPT-2 (compiled --no-cache, a forward
without a KV cache) the answer is the last position's logits, the next-token distribution; for BERT the
pooled output. Both run onnxruntime with the benchmarks' 2 intra-op threads in total; the clients run in
this process (threads, a new connection per request), on the same 2 cores as the servers. A few answers of
the two are compared (1e-4) before timing. Reported per model, contender and concurrency: requests/s,
p50 and p99 latency (ms), errors; with matplotlib (`pip install -e ".[plots]"`), latency against load in
benchmarks/serving.png.

The full run (the lead's; about 15 minutes):

    python benchmarks/serving.py --requests 256 --max-batch-size 16 --batch-wait-ms 5 --json serving.json

A check on a tiny model, in seconds:

    python benchmarks/serving.py --specs tests-tiny --requests 24 --concurrency 1,4 --plot none
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import describe
from timing import THREADS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPECS = "specs/bert-base.yaml,specs/gpt2-small.yaml"
TINY = """tfc: 1
name: tiny-{topology}
topology: {topology}
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 50, max_length: 160}}
{topology}: {{layers: 2}}
head: {{kind: lm}}
"""
LENGTHS = (16, 128)  # each request's tokens, drawn uniformly
START_SECONDS = 300


def environment() -> dict:
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p] + [str(ROOT), str(ROOT / "runtime")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


# --- (a) the plain server -----------------------------------------------------------------------------------

def plain_server(model_path: str, port: int) -> None:
    """One request at a time: http.server's HTTPServer (not threading) around `Model.run`."""
    sys.path[:0] = [str(ROOT), str(ROOT / "runtime")]
    from tfc_runtime import Model
    from tfc_runtime.serving.protocol import listed

    model = Model(model_path, intra_op_threads=THREADS)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer(200, b'{"status": "ok"}')

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            try:
                outputs = model.run(body["inputs"])
            except ValueError as error:
                return self.answer(400, json.dumps({"error": {"message": str(error)}}).encode())
            if body.get("last_token"):
                outputs = {name: value[:, -1:] if value.ndim == 3 else value for name, value in outputs.items()}
            self.answer(200, json.dumps({"outputs": listed(outputs)}).encode())

        def answer(self, status: int, data: bytes):
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # one line per request would be the benchmark's noise
            pass

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()


# --- the driver ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST" if body is not None else "GET", path, body=body,
                           headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Process:
    """A server process, stopped (its process group: Ray's with it) when the block ends."""

    def __init__(self, argv: list[str], port: int):
        self.port, self.log = port, tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(argv, env=environment(), stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def __enter__(self):
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"the server exited: {self.log.read()[-2000:]}")
            try:
                if call(self.port, "/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server did not start in {START_SECONDS} s")

    def __exit__(self, *_):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def bodies(model_path: Path, count: int, seed: int = 0) -> tuple[list[bytes], bool]:
    """`count` request bodies of one row each, 16..128 tokens; and whether they ask for the last position only."""
    sys.path[:0] = [str(ROOT / "runtime")]
    from tfc_runtime import Model

    model, rng = Model(model_path), np.random.default_rng(seed)
    last = model.metadata.get("tfcompiler.topology") == "decoder"
    vocab, out = model.limits.vocab_size, []
    for _ in range(count):
        length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
        inputs = {"input_ids": rng.integers(0, vocab, (1, length)).tolist(), "attention_mask": [[1] * length]}
        if any(p.role == "token_type_ids" for p in model.inputs):
            inputs["token_type_ids"] = [[0] * length]
        out.append(json.dumps({"inputs": inputs, "last_token": last}).encode())
    return out, last


def load(port: int, requests: list[bytes], clients: int) -> dict:
    """All `requests` sent by `clients` threads; per request its latency; throughput over the whole."""
    def one(body: bytes) -> tuple[float, int]:
        start = time.perf_counter()
        try:
            status = call(port, "/predict", body)[0]
        except (OSError, http.client.HTTPException):
            status = 0
        return time.perf_counter() - start, status

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, requests))
    wall = time.perf_counter() - start
    latencies = sorted(seconds for seconds, status in results if status == 200)
    errors = sum(status != 200 for _, status in results)
    percentile = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3) if latencies \
        else (lambda q: float("nan"))
    return {"clients": clients, "requests": len(requests), "errors": errors,
            "requests_per_second": len(latencies) / wall, "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
            "mean_ms": statistics.fmean(latencies) * 1e3 if latencies else float("nan")}


def compile_models(specs: list[str], folder: Path) -> dict[str, Path]:
    """Each spec compiled to an .onnx (random weights; a decoder --no-cache: a forward over the whole input)."""
    sys.path[:0] = [str(ROOT)]
    from tfcompiler.cli import main as tfc
    from tfcompiler.language import load_spec

    out = {}
    for spec in specs:
        if spec == "tests-tiny":
            for topology in ("encoder", "decoder"):
                (folder / f"tiny-{topology}.yaml").write_text(TINY.format(topology=topology))
                out.update(compile_models([str(folder / f"tiny-{topology}.yaml")], folder))
            continue
        name = load_spec(spec).name
        flags = ["--no-cache"] if load_spec(spec).decoder is not None else []
        assert tfc(["compile", spec, "-o", str(folder / f"{name}.onnx"), "-q", *flags]) == 0, spec
        out[name] = folder / f"{name}.onnx"
    return out


def agree(ports: list[int], requests: list[bytes]) -> None:
    """The contenders' answers to the same requests, within 1e-4 of each other."""
    for body in requests:
        answers = []
        for port in ports:
            status, data = call(port, "/predict", body)
            assert status == 200, data[:300]
            answers.append({k: np.array(v, np.float32) for k, v in json.loads(data)["outputs"].items()})
        for name, value in answers[0].items():
            for other in answers[1:]:
                np.testing.assert_allclose(other[name], value, rtol=1e-4, atol=1e-4)


def benchmark(name: str, path: Path, args) -> list[dict]:
    requests, _ = bodies(path, args.requests)
    warm, rows = requests[: min(8, len(requests))], []
    threads = max(1, THREADS // args.replicas)
    contenders = {
        "plain": ([sys.executable, str(Path(__file__).resolve()), "--plain-server", str(path), "--port", "{port}"], ""),
        "tfc serve": ([sys.executable, "-m", "tfcompiler.cli", "serve", str(path), "--port", "{port}",
                       "--replicas", str(args.replicas), "--threads", str(threads),
                       "--max-batch-size", str(args.max_batch_size), "--batch-wait-ms", str(args.batch_wait_ms),
                       "--max-queued-requests", str(max(args.concurrency) * 4)],
                      f"{args.replicas} replica(s) x {threads} threads, batches <= {args.max_batch_size} rows, "
                      f"{args.batch_wait_ms:g} ms wait"),
    }
    ports = {}
    started = []
    try:
        for contender, (argv, _) in contenders.items():
            ports[contender] = free_port()
            started.append(Process([a.format(port=ports[contender]) for a in argv], ports[contender]).__enter__())
        agree(list(ports.values()), warm)
        for contender, (_, settings) in contenders.items():
            for clients in args.concurrency:
                load(ports[contender], warm, min(clients, len(warm)))  # warm-up at this load
                row = {"model": name, "contender": contender, "settings": settings,
                       **load(ports[contender], requests, clients)}
                print(f"  {name:12s} {contender:10s} {clients:3d} clients: {row['requests_per_second']:8.1f} req/s, "
                      f"p50 {row['p50_ms']:8.1f} ms, p99 {row['p99_ms']:8.1f} ms, {row['errors']} errors",
                      flush=True)
                rows.append(row)
    finally:
        for process in started:
            process.__exit__()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | contender | clients | requests/s | p50 ms | p99 ms | errors |", "|" + " --- |" * 7]
    lines += [f"| {r['model']} | {r['contender']} | {r['clients']} | {r['requests_per_second']:.1f} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |" for r in rows]
    gains = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for clients in dict.fromkeys(r["clients"] for r in rows):
            pair = {r["contender"]: r for r in rows if r["model"] == model and r["clients"] == clients}
            if len(pair) == 2:
                gain = pair["tfc serve"]["requests_per_second"] / pair["plain"]["requests_per_second"]
                gains.append(f"{model} at {clients} clients: tfc serve {gain:.2f}x the plain server's requests/s")
    return "\n".join(lines + [""] + gains)


def plot(rows: list[dict], path: str) -> None:
    try:
        import matplotlib
    except ImportError:
        print("no plot: matplotlib is not installed (pip install -e \".[plots]\")")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    figure, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for axis, model in zip(axes[0], models):
        for contender, color in (("plain", "tab:gray"), ("tfc serve", "tab:blue")):
            mine = [r for r in rows if r["model"] == model and r["contender"] == contender]
            clients = [r["clients"] for r in mine]
            axis.plot(clients, [r["p50_ms"] for r in mine], "o-", color=color, label=f"{contender} p50")
            axis.plot(clients, [r["p99_ms"] for r in mine], "s--", color=color, label=f"{contender} p99")
        axis.set(title=model, xlabel="concurrent clients", ylabel="latency (ms)", xscale="log", yscale="log")
        axis.set_xticks(clients, [str(c) for c in clients])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", default=SPECS, help="comma-separated specs; 'tests-tiny': a tiny encoder and decoder")
    p.add_argument("--requests", type=int, default=256, help="requests per model, contender and concurrency")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--plot", default=str(HERE / "serving.png"), help="'none': no plot")
    p.add_argument("--plain-server", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.plain_server:
        plain_server(args.plain_server, args.port)
        return 0
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    print(describe())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, path in compile_models(args.specs.split(","), Path(folder)).items():
            rows += benchmark(name, path, args)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if args.plot != "none":
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

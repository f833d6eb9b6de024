"""`tfc serve`: the batching in NumPy (a batched row's outputs are the row's alone), then two real servers on
127.0.0.1 started as `tfc serve` processes — a tiny encoder on two replicas, a tiny cached decoder's model folder
on one with tight overload limits — checked against direct onnxruntime runs and the runtime's Generator, under
a bounded load with a replica killed in the middle, with malformed requests, and past their queue.

Each server is used by one test (a sequence of named checks), so pytest-xdist starts it once; every process
started is stopped, the tests failing or not (Ray's own processes end with the `tfc serve` that started them)."""
from __future__ import annotations

import concurrent.futures
import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
from conftest import ROOT, tiny_spec, whole_input

from tfc_runtime import Generator, Model
from tfc_runtime.serving.batching import Plan
from tfcompiler.cli import main as tfc

START_SECONDS = 150  # two Ray clusters starting at once on two busy cores
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny encoder (.onnx) and a tiny cached decoder's model folder, vocabulary 50, max_length 32."""
    root = tmp_path_factory.mktemp("serve")
    (root / "encoder.yaml").write_text(tiny_spec("encoder", head="lm"))
    (root / "decoder.yaml").write_text(tiny_spec())
    assert tfc(["compile", str(root / "encoder.yaml"), "-o", str(root / "encoder.onnx"), "-q"]) == 0
    assert tfc(["compile", str(root / "decoder.yaml"), "-o", str(root / "decoder") + "/", "-q"]) == 0
    try:  # words w0..w49 for token ids 0..49, so the decoder also takes text
        import tokenizers
    except ImportError:
        return {"encoder": root / "encoder.onnx", "decoder": root / "decoder"}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel({f"w{i}": i for i in range(50)}, unk_token="w0"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.decoder = tokenizers.decoders.WordPiece()  # joins words with spaces
    tokenizer.save(str(root / "decoder" / "tokenizer.json"))
    return {"encoder": root / "encoder.onnx", "decoder": root / "decoder"}


@functools.cache
def session_of(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the note on a decoder's logits_to_keep, an input with a default
    return ort.InferenceSession(str(path if path.suffix == ".onnx" else path / "model.onnx"), options)


def direct(path, ids: list[list[int]]) -> np.ndarray:
    """The logits of rows of one length, from onnxruntime alone: mask all ones, an empty past, positions 0.."""
    session = session_of(path)
    feeds = {"input_ids": np.array(ids, np.int64), "attention_mask": np.ones((len(ids), len(ids[0])), np.int64)}
    return session.run(["logits"], whole_input(session, feeds))[0]


def random_rows(rng, count: int, length: int) -> list[list[int]]:
    return rng.integers(0, 50, (count, length)).tolist()


# --- the batching, without a server -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_rows_of_different_lengths_batched_equal_the_rows_alone(models, kind):
    plan, rng = Plan(Model(models[kind] if kind == "encoder" else models[kind] / "model.onnx")), \
        np.random.default_rng(0)
    requests = [{"input_ids": random_rows(rng, rows, length)} for rows, length in ((2, 3), (1, 17), (3, 1), (1, 32))]
    batched = plan.run([plan.pending(r) for r in requests])
    for request, outputs in zip(requests, batched):
        assert list(outputs) == ["logits"]  # a decoder's presents stay inside
        expected = direct(models[kind], request["input_ids"])
        assert outputs["logits"].shape == expected.shape
        np.testing.assert_allclose(outputs["logits"], expected, rtol=0, atol=TOLERANCE)
    lasts = plan.run([plan.pending(r, last=True) for r in requests])  # next-token logits: each row's last column
    for request, outputs in zip(requests, lasts):
        np.testing.assert_allclose(outputs["logits"], direct(models[kind], request["input_ids"])[:, -1:], rtol=0,
                                   atol=TOLERANCE)


def test_without_a_mask_only_rows_of_one_length_share_a_batch(tmp_path):
    """An encoder that multiplies its ids (no mask: padding would change the product) batches equal lengths only."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceProd", ["input_ids"], ["total"], keepdims=1)], "product",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"])],
        [helper.make_tensor_value_info("total", TensorProto.INT64, ["batch_size", 1])])
    graph.node[0].input.append("axis")
    graph.initializer.append(helper.make_tensor("axis", TensorProto.INT64, [1], [1]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {"tfcompiler.topology": "encoder",
                                   "tfcompiler.io_roles": json.dumps({"input_ids": "token_ids", "total": "output"})})
    (tmp_path / "sum.onnx").write_bytes(model.SerializeToString())
    plan = Plan(Model(tmp_path / "sum.onnx"))
    requests = [[[1, 2, 3]], [[4, 5]], [[6, 7, 8]]]
    pending = [plan.pending({"input_ids": ids}) for ids in requests]
    assert not plan.exact and pending[0].key == pending[2].key != pending[1].key
    assert [a["total"].tolist() for a in plan.run(pending)] == [[[6]], [[20]], [[336]]]


def test_a_request_that_does_not_fit_is_refused_alone_with_its_reason(models):
    plan = Plan(Model(models["encoder"]))
    for inputs, reason in [({"input_ids": [[1, 2], [3]]}, "input_ids: expected an array of numbers"),
                           ({"attention_mask": [[1]]}, "missing ['input_ids']"),
                           ({"input_ids": [[1, 60]]}, "input_ids[0, 1]: expected a token id in the vocabulary"),
                           ({"input_ids": [list(range(33))]}, "over the model's max_length 32"),
                           ({"input_ids": [[1.5]]}, "expected an integer (int64), got 1.5")]:
        with pytest.raises(ValueError, match=None) as error:
            plan.pending(inputs)
        assert reason in str(error.value)


def test_serve_without_ray_says_what_to_install(models, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # an import of it now fails
    assert tfc(["serve", str(models["encoder"])]) == 1
    assert 'tfc serve needs Ray Serve: pip install "tfcompiler[serve]"' in capsys.readouterr().err


def test_serve_refuses_a_missing_model_and_a_port_in_use(models, tmp_path, capsys):
    pytest.importorskip("ray.serve", reason="tfc serve needs Ray Serve")
    assert tfc(["serve", str(tmp_path / "none.onnx")]) == 1
    assert "no such model file or folder" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert tfc(["serve", str(models["encoder"]), "--port", str(port)]) == 1
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err


# --- the servers -------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `tfc serve` process on 127.0.0.1 and a small HTTP client for it."""

    def __init__(self, model, *flags: str):
        pytest.importorskip("ray.serve", reason="tfc serve needs Ray Serve (pip install \"tfcompiler[serve]\")")
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runtime")])}
        self.log = open(f"{model}.serve.log", "w+")
        self.process = subprocess.Popen([sys.executable, "-m", "tfcompiler.cli", "serve", str(model), "--port",
                                         str(self.port), *flags], stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"tfc serve exited: {self.output()}"
            try:
                if self.call("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"tfc serve did not answer /health in {START_SECONDS} s: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def call(self, method: str, path: str, body=None, timeout: float = 60) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            connection.request(method, path, body=data, headers={"content-type": "application/json"})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def predict(self, ids: list[list[int]]) -> tuple[np.ndarray, dict]:
        status, headers, data = self.call("POST", "/predict", {"inputs": {"input_ids": ids}})
        assert status == 200, data
        return np.array(json.loads(data)["outputs"]["logits"], np.float32), headers

    def stop(self) -> None:
        """SIGTERM (the server takes Ray down), then SIGKILL to the process group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def start():
    """start(model, *flags) -> a ready Server; all of them stopped after the test."""
    started = []

    def make(model, *flags):
        started.append(Server(model, *flags))
        return started[-1]
    yield make
    for server in started:
        server.stop()


def test_an_encoder_served_on_two_replicas(models, start):
    server = start(models["encoder"], "--replicas", "2", "--max-batch-size", "8", "--batch-wait-ms", "10")
    server.wait_ready()
    check_metadata(server, models["encoder"])
    check_answers_equal_onnxruntime(server, models["encoder"])
    check_load_with_a_replica_killed(server, models["encoder"])
    check_malformed_requests(server)


def test_a_decoder_folder_served_with_tight_limits(models, start):
    server = start(models["decoder"], "--replicas", "1", "--max-batch-size", "8", "--batch-wait-ms", "300",
                   "--max-ongoing-requests", "2", "--max-queued-requests", "2")
    server.wait_ready()
    # within the limits even when every request reaches Ray's proxy before the replica takes one: the 2 queued
    # (3 at once was refused now and then: the proxy counts a request queued until a replica takes it)
    check_answers_equal_onnxruntime(server, models["decoder"], count=2)
    check_generation(server, models["decoder"])
    check_overload_is_refused(server)
    check_malformed_requests(server)


# --- the checks --------------------------------------------------------------------------------------------

def check_metadata(server, path):
    status, _, data = server.call("GET", "/metadata")
    meta, model = json.loads(data), Model(path)
    assert status == 200
    assert (meta["spec_name"], meta["spec_sha256"]) == (model.metadata["tfcompiler.spec_name"],
                                                       model.metadata["tfcompiler.spec_sha256"])
    assert meta["inputs"] == [{"name": "input_ids", "dtype": "int64", "shape": ["batch_size", "sequence_length"],
                               "role": "token_ids", "required": True},
                              {"name": "attention_mask", "dtype": "int64", "shape": ["batch_size", "sequence_length"],
                               "role": "padding_mask", "required": False}]
    assert meta["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch_size", "sequence_length", 50],
                                "role": "output"}]


def check_answers_equal_onnxruntime(server, path, count=5):
    """Requests of different lengths at once (so they share batches): each answer is its rows' alone."""
    rng = np.random.default_rng(1)
    requests = [random_rows(rng, rows, length) for rows, length in ((1, 5), (2, 12), (1, 1), (3, 32), (1, 7))][:count]
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(server.predict, requests))
    for ids, (logits, _) in zip(requests, answers):
        np.testing.assert_allclose(logits, direct(path, ids), rtol=0, atol=TOLERANCE)
    assert max(int(headers["x-tfc-batch-requests"]) for _, headers in answers) > 1


def check_load_with_a_replica_killed(server, path, total=512, clients=32):
    """512 requests from 32 clients, lengths 1..32, 1 or 2 rows; one replica killed (SIGKILL) a third of the
    way: clients retry what failed, and every request ends answered, correctly. Ray starts a new replica."""
    rng = np.random.default_rng(2)
    requests = [random_rows(rng, int(rng.integers(1, 3)), int(rng.integers(1, 33))) for _ in range(total)]
    expected = [direct(path, ids) for ids in requests]
    done, retries, batches, pids = [0], [0], [], set()
    lock = threading.Lock()

    def ask(i):
        for attempt in range(40):
            try:
                status, headers, data = server.call("POST", "/predict", {"inputs": {"input_ids": requests[i]}})
            except (OSError, http.client.HTTPException):  # the connection to the killed replica's answer broke
                status = None
            if status == 200:
                with lock:
                    done[0] += 1
                    retries[0] += attempt
                    batches.append(int(headers["x-tfc-batch-requests"]))
                    pids.add(int(headers["x-tfc-replica-pid"]))
                return np.array(json.loads(data)["outputs"]["logits"], np.float32)
            assert status is None or status >= 500 or status == 429, (status, data)
            time.sleep(0.25)
        raise AssertionError(f"request {i} was not answered in 40 tries")

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(ask, i) for i in range(total)]
        while done[0] < total // 3 and not any(f.done() and f.exception() for f in futures):
            time.sleep(0.05)
        with lock:
            killed = sorted(pids)[0]
        os.kill(killed, signal.SIGKILL)
        answers = [f.result() for f in futures]
    for logits, want in zip(answers, expected):
        np.testing.assert_allclose(logits, want, rtol=0, atol=TOLERANCE)
    assert max(batches) > 1, "no request shared a batch"
    deadline, serving = time.monotonic() + 60, set()
    while len(serving - {killed}) < 2 and time.monotonic() < deadline:  # the replacement joins
        serving.add(int(server.predict([[1, 2, 3]])[1]["x-tfc-replica-pid"]))
    assert len(serving - {killed}) == 2, f"replicas serving after the kill: {serving} (killed {killed})"
    stats = json.loads(server.call("GET", "/stats")[2])
    assert stats["batches"] >= 1 and sum(stats["batches_by_requests"].values()) == stats["batches"], stats


MALFORMED = [
    ("POST", "/predict", b"{not json", "not valid JSON"),
    ("POST", "/predict", b"[1, 2]", "must be a JSON object"),
    ("POST", "/predict", {"input_ids": [[1]]}, "expected {\"inputs\""),
    ("POST", "/predict", {"inputs": {"attention_mask": [[1]]}}, "missing ['input_ids']"),
    ("POST", "/predict", {"inputs": {"input_ids": [[1, 2], [3]]}}, "cannot read as one"),
    ("POST", "/predict", {"inputs": {"input_ids": [["a"]]}}, "expected numbers (int64)"),
    ("POST", "/predict", {"inputs": {"input_ids": [[0.5]]}}, "expected an integer (int64)"),
    ("POST", "/predict", {"inputs": {"input_ids": [1, 2]}}, "expected 2 axes"),
    ("POST", "/predict", {"inputs": {"input_ids": [[1, 99]]}}, "vocabulary [0, 50)"),
    ("POST", "/predict", {"inputs": {"input_ids": [list(range(33))]}}, "over the model's max_length 32"),
    ("POST", "/predict", {"inputs": {"input_ids": [[1]] * 9}}, "over the server's batch of 8 rows"),
    ("POST", "/predict", {"inputs": {"input_ids": [[1, 2]], "attention_mask": [[1, 2]]}}, "expected 0 or 1"),
    ("GET", "/predict", None, "takes POST"),
    ("GET", "/nowhere", None, "no route GET /nowhere"),
]
GENERATION_MALFORMED = [
    ("POST", "/generate", {"input_ids": [[1, 2]], "max_new_tokens": 0}, "max_new_tokens: expected an integer >= 1"),
    ("POST", "/generate", {"input_ids": [[1, 99]]}, "outside the vocabulary"),
    ("POST", "/generate", {"input_ids": [list(range(30)) * 2]}, "max_length 32"),
    ("POST", "/generate", {"input_ids": [[1]], "temprature": 1}, "unknown field 'temprature'"),
    ("POST", "/v1/completions", {"max_tokens": 3}, "missing field 'prompt'"),
    ("POST", "/v1/completions", {"prompt": [1, 2], "n": 2}, "n: this server supports only 1"),
    ("POST", "/v1/completions", {"prompt": [1, 2], "temperature": -1}, "temperature: expected a number in [0, 2]"),
    ("POST", "/v1/completions", {"prompt": [1, 2], "max_tokens": "many"}, "max_tokens: expected integer"),
]


def check_malformed_requests(server):
    generation = json.loads(server.call("GET", "/metadata")[2])["generation"]
    text = [("POST", "/generate", {"prompt": "w1 w2"}, "needs the model folder's tokenizer.json")] \
        if generation and not generation["tokenizer"] else []
    for method, route, body, reason in MALFORMED + (GENERATION_MALFORMED + text if generation else []):
        status, _, data = server.call(method, route, body)
        assert 400 <= status < 500, (route, body, status, data)
        assert reason in json.loads(data)["error"]["message"], (route, body, data)
    assert server.call("GET", "/health")[0] == 200
    assert server.predict([[1, 2, 3]])[0].shape == (1, 3, 50)


def check_generation(server, folder):
    """/generate's stream and /v1/completions (greedy and seeded sampling) give the Generator's tokens."""
    generator, prompt = Generator(folder), [[5, 6, 7]]
    greedy = generator.generate(prompt, max_new_tokens=6)[0, 3:].tolist()
    status, headers, data = server.call("POST", "/generate", {"input_ids": prompt, "max_new_tokens": 6,
                                                              "stream": True})
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    assert [line["token"] for line in lines[:-1]] == greedy
    assert lines[-1]["done"] and lines[-1]["sequences"] == [prompt[0] + greedy]

    status, _, data = server.call("POST", "/v1/completions", {"prompt": prompt[0], "max_tokens": 6,
                                                              "temperature": 0, "model": "tiny"})
    body = json.loads(data)
    assert status == 200 and body["object"] == "text_completion" and body["model"] == "tiny"
    assert body["choices"][0]["token_ids"] == greedy and body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}

    sampled = generator.generate(prompt, max_new_tokens=5, do_sample=True, temperature=0.8, top_k=0, top_p=0.9,
                                 seed=7)[0, 3:].tolist()
    status, headers, data = server.call("POST", "/v1/completions", {"prompt": prompt[0], "max_tokens": 5,
                                                                    "temperature": 0.8, "top_p": 0.9, "seed": 7,
                                                                    "stream": True})
    events = [line[len("data: "):] for line in data.decode().split("\n\n") if line]
    assert status == 200 and headers["content-type"].startswith("text/event-stream") and events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert [t for chunk in chunks for t in chunk["choices"][0]["token_ids"]] == sampled
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"

    prompts = [[5, 6, 7], [8], [9, 10]]  # rows of different lengths in one request: left-padded together
    expected = generator.generate(prompts, max_new_tokens=4, return_dict_in_generate=True).rows()
    status, _, data = server.call("POST", "/generate", {"input_ids": prompts, "max_new_tokens": 4})
    assert status == 200 and json.loads(data)["sequences"] == expected
    if json.loads(server.call("GET", "/metadata")[2])["generation"]["tokenizer"]:
        status, _, data = server.call("POST", "/v1/completions", {"prompt": "w5 w6 w7", "max_tokens": 6,
                                                                  "temperature": 0})
        choice = json.loads(data)["choices"][0]
        assert status == 200 and choice["token_ids"] == greedy
        assert choice["text"] == " ".join(f"w{i}" for i in greedy)


def check_overload_is_refused(server, clients=16):
    """One replica holding 2 requests (waiting 300 ms for a batch to fill) and 2 queued at the proxy: of 16 at
    once, the rest are refused at once with 429 and a reason, and the server keeps serving."""
    barrier = threading.Barrier(clients)

    def ask(_):
        barrier.wait()
        return server.call("POST", "/predict", {"inputs": {"input_ids": [[1, 2, 3]]}})

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(ask, range(clients)))
    statuses = sorted(status for status, _, _ in answers)
    assert set(statuses) <= {200, 429} and statuses.count(429) >= 1 and statuses.count(200) >= 2, statuses
    refused = next((headers, data) for status, headers, data in answers if status == 429)
    assert refused[0].get("retry-after") == "1" and b"max_queued_requests=2" in refused[1], refused  # Ray's words
    assert server.predict([[1, 2, 3]])[0].shape == (1, 3, 50)

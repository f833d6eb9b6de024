"""The Ray Serve deployment behind `tfc serve`: each replica holds an onnxruntime session of the model (and a
`Generator` for a decoder that generates) and answers HTTP JSON:

    POST /predict          {"inputs": {"input_ids": [[...]], ...}} -> {"outputs": {"logits": [[...]]}}, the
                           request's rows batched with other requests' (`serve.batch`, tfc_runtime.serving.batching);
                           with "last_token": true only the last position (a decoder's next-token logits)
    POST /generate, POST /v1/completions   text generation (tfc_runtime.serving.decoding)
    GET /health, GET /metadata, GET /stats  liveness; the model's spec, inputs and outputs; this replica's batches

A /predict answer says in its headers which batch it rode in (`x-tfc-batch-requests`, `x-tfc-batch-rows`) and
which replica ran it (`x-tfc-replica`, `x-tfc-replica-pid`). Refusals are `{"error": {"message", "type",
"code"}}` with a 4xx for the client's mistakes: a bad request never reaches a batch, so it cannot fail the
requests beside it."""
from __future__ import annotations

import asyncio
import collections
import json
import os
from pathlib import Path

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..generation import Generator, model_files
from ..session import Model
from . import decoding
from .batching import Plan
from .protocol import RequestError, field, json_object, listed


def rows_of(items: list) -> int:
    """A batch's size in rows, not requests: `--max-batch-size` bounds what one onnxruntime call runs."""
    return sum(item.rows for item in items)


def tokenizer_of(folder: Path):
    """The model folder's tokenizer, or None (no tokenizer.json, or no `tokenizers` package)."""
    if not (folder / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


class ModelServer:
    """One replica (see the module docstring)."""

    def __init__(self, path: str, max_batch_size: int, batch_wait_s: float, threads: int | None):
        file, _, config = model_files(path)
        try:  # a decoder with an LM head (or an encoder-decoder's folder) also generates
            self.generator = Generator(path, intra_op_threads=threads)
            self.model = self.generator.model
        except ValueError:
            self.generator, self.model = None, Model(file, intra_op_threads=threads)
        self.plan = Plan(self.model, pad_id=config.get("pad_token_id") or 0)  # any id: the mask hides it
        self.tokenizer = tokenizer_of(file.parent)
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.batched.set_max_batch_size(max_batch_size)
        self.batched.set_batch_wait_timeout_s(batch_wait_s)
        self.replica, self.pid = serve.get_replica_context().replica_id.unique_id, os.getpid()
        self.stats = collections.Counter()
        self.sizes = collections.Counter()
        self.routes = {("POST", "/predict"): self.predict, ("GET", "/health"): self.health,
                       ("GET", "/metadata"): self.metadata, ("GET", "/stats"): self.replica_stats}
        if self.generator is not None:
            self.routes |= {("POST", "/generate"): self.generate, ("POST", "/v1/completions"): self.completions}

    async def __call__(self, request: Request) -> Response:
        route = self.routes.get((request.method, request.url.path))
        try:
            if route is None:
                methods = sorted(m for m, p in self.routes if p == request.url.path)
                if methods:
                    raise RequestError(405, f"{request.url.path} takes {' or '.join(methods)}, not {request.method}")
                paths = sorted(f"{m} {p}" for m, p in self.routes)
                raise RequestError(404, f"no route {request.method} {request.url.path}; the routes: {', '.join(paths)}")
            return await route(request)
        except RequestError as error:
            self.stats["refused"] += 1
            return JSONResponse(error.body(), status_code=error.status)

    # --- /predict -----------------------------------------------------------------------------------------

    async def predict(self, request: Request) -> Response:
        body = json_object(await request.body())
        inputs = body.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            raise RequestError(400, "expected {\"inputs\": {\"input_ids\": [[...]], ...}}: named inputs as nested "
                                    f"lists; this model takes {self.plan.required}")
        unknown = sorted(set(body) - {"inputs", "last_token"})
        if unknown:
            raise RequestError(400, f"unknown field {unknown[0]!r}; the body holds \"inputs\" and optionally "
                                    "\"last_token\"")
        try:
            pending = self.plan.pending(inputs, last=field(body, "last_token", bool, False))
        except ValueError as error:
            raise RequestError(400, str(error)) from None
        if pending.rows > self.max_batch_size:
            raise RequestError(400, f"{pending.rows} rows in one request, over the server's batch of "
                                    f"{self.max_batch_size} rows (--max-batch-size)")
        answer, (requests, rows) = await self.batched(pending)
        if isinstance(answer, ValueError):
            raise RequestError(400, str(answer))
        if isinstance(answer, MemoryError):
            raise RequestError(507, f"not enough memory for this request ({answer})")
        headers = {"x-tfc-batch-requests": str(requests), "x-tfc-batch-rows": str(rows),
                   "x-tfc-replica": self.replica, "x-tfc-replica-pid": str(self.pid)}
        return Response(json.dumps({"outputs": listed(answer)}), media_type="application/json", headers=headers)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005, batch_size_fn=rows_of)
    async def batched(self, items: list) -> list:
        """Runs in a worker thread, so the replica takes in the next requests while this batch computes."""
        results = await asyncio.get_running_loop().run_in_executor(None, self._run, items)
        rows = rows_of(items)
        self.stats["batches"] += 1
        self.stats["requests"] += len(items)
        self.stats["rows"] += rows
        self.sizes[len(items)] += 1
        return [(result, (len(items), rows)) for result in results]

    def _run(self, items: list) -> list:
        try:
            return self.plan.run(items)
        except (ValueError, MemoryError):  # some request the checks let through: find it, spare the others
            answers = []
            for item in items:
                try:
                    answers.append(self.plan.run([item])[0])
                except (ValueError, MemoryError) as error:
                    answers.append(error)
            return answers

    # --- the others ---------------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metadata(self, request: Request) -> Response:
        meta, plan = self.model.metadata, self.plan

        def port(p, required=None):
            out = {"name": p.name, "dtype": p.dtype.__name__, "shape": list(p.shape), "role": p.role}
            return out | ({"required": required} if required is not None else {})
        return JSONResponse({
            "spec_name": meta.get("tfcompiler.spec_name"), "spec_sha256": meta.get("tfcompiler.spec_sha256"),
            "tfcompiler_version": meta.get("tfcompiler.version"), "topology": meta.get("tfcompiler.topology"),
            "max_length": self.model.limits.max_length, "vocab_size": self.model.limits.vocab_size,
            "inputs": [port(p, p.name in plan.required) for p in plan.given],
            "outputs": [port(p) for p in plan.returned],
            "batching": {"max_batch_size": self.max_batch_size, "batch_wait_ms": self.batch_wait_s * 1e3,
                         "padding": "rows padded to the longest" if plan.exact else "rows of equal shapes only"},
            "generation": {"routes": ["/generate", "/v1/completions"], "tokenizer": self.tokenizer is not None,
                           "cached": self.generator.cached} if self.generator is not None else None})

    async def replica_stats(self, request: Request) -> Response:
        return JSONResponse({"replica": self.replica, "pid": self.pid, **self.stats,
                             "batches_by_requests": {str(k): v for k, v in sorted(self.sizes.items())}})

    async def generate(self, request: Request) -> Response:
        ask = decoding.native(json_object(await request.body()), self.tokenizer)
        run = await self._start(ask)
        if ask.stream:
            return StreamingResponse(run.ndjson(), media_type="application/x-ndjson")
        async for _ in run.steps():
            pass
        return JSONResponse(run.native_body())

    async def completions(self, request: Request) -> Response:
        ask = decoding.openai(json_object(await request.body()), self.tokenizer)
        run = await self._start(ask)
        if ask.stream:
            return StreamingResponse(run.server_sent_events(), media_type="text/event-stream")
        async for _ in run.steps():
            pass
        return JSONResponse(run.openai_body())

    async def _start(self, ask) -> decoding.Decoding:
        run = decoding.Decoding(self.generator, self.tokenizer, ask, self.model.metadata.get("tfcompiler.spec_name"))
        await run.start()
        self.stats["generations"] += 1
        return run


"""The text-generation routes of `tfc serve`, over the runtime's `Generator` (its options, checks and sampling):

    POST /generate        {"input_ids": [[5, 6, 7]] or "prompt": "text", "max_new_tokens": 32, "do_sample": ...,
                          "stream": true}  ->  NDJSON lines {"row": 0, "token": 11, "text": " a"} as tokens come,
                          then {"done": true, "sequences": [...], "finish_reasons": [...], ...}
    POST /v1/completions  OpenAI's request (prompt as text or token ids, max_tokens, temperature, top_p, seed,
                          stream) and response shape (choices, usage; server-sent events when streamed)

`generate` runs in a worker thread; its streamer hands each step's tokens to the event loop, so a replica
keeps answering while it decodes, and a client that goes away stops its decoding at the next token."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field as dataclass_field

import numpy as np

from .protocol import RequestError, field

# OpenAI's fields this server takes as they are; the others it refuses unless they have their default value
UNSUPPORTED = {"n": 1, "best_of": 1, "echo": False, "logprobs": None, "stop": None, "suffix": None,
               "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": None}
IGNORED = ("model", "user", "stream_options")


@dataclass
class Ask:
    """One generation request, its fields checked: prompts as token ids, and `Generator.generate`'s options."""

    prompts: list
    options: dict
    stream: bool
    openai: bool = False
    eos: tuple = dataclass_field(default_factory=tuple)


def prompts_of(value, tokenizer, name: str) -> list[list[int]]:
    """Text, several texts, token ids, or several lists of them: token-id lists (text through the tokenizer)."""
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) and value and all(
        isinstance(v, str) for v in value) else None
    if texts is not None:
        if tokenizer is None:
            raise RequestError(400, f"{name}: text needs the model folder's tokenizer.json and the `tokenizers` "
                                    "package on the server; send token ids instead")
        return [tokenizer.encode(text).ids for text in texts]
    if isinstance(value, list) and value and all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return [value]
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        return value  # each row's ids are checked by the Generator, which names the row
    raise RequestError(400, f"{name}: expected text, token ids [5, 6, 7], or a list of either, got "
                            f"{json.dumps(value)[:80]}")


def native(body: dict, tokenizer) -> Ask:
    """`POST /generate`'s body: `input_ids` or `prompt`, then `Generator.generate`'s own options by name."""
    if ("input_ids" in body) == ("prompt" in body):
        raise RequestError(400, "give the prompt as \"input_ids\" (token ids) or as \"prompt\" (text), one of the two")
    prompts = prompts_of(body.get("input_ids", body.get("prompt")), tokenizer,
                         "input_ids" if "input_ids" in body else "prompt")
    names = ("max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p",
             "repetition_penalty", "seed", "eos_token_id")
    unknown = sorted(set(body) - {"input_ids", "prompt", "stream", *names})
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r}; the fields are input_ids or prompt, stream, "
                                + ", ".join(names))
    options = {name: body[name] for name in names if name in body}
    options.setdefault("max_new_tokens", 32)
    return Ask(prompts, options, bool(field(body, "stream", bool, False)))


def openai(body: dict, tokenizer) -> Ask:
    """`POST /v1/completions`'s body, as OpenAI defines it (temperature 0: greedy; no top-k)."""
    prompts = prompts_of(field(body, "prompt", (str, list), required=True), tokenizer, "prompt")
    for name, default in UNSUPPORTED.items():
        if body.get(name, default) not in (default, None):
            raise RequestError(400, f"{name}: this server supports only {json.dumps(default)}, got "
                                    f"{json.dumps(body[name])[:80]}")
    known = {"prompt", "max_tokens", "temperature", "top_p", "seed", "stream", *UNSUPPORTED, *IGNORED}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r}; this server takes {', '.join(sorted(known))}")
    temperature = field(body, "temperature", (int, float), 1.0)
    if temperature < 0 or temperature > 2:
        raise RequestError(400, f"temperature: expected a number in [0, 2], got {temperature}")
    options = {"max_new_tokens": field(body, "max_tokens", int, 16), "top_p": field(body, "top_p", (int, float), 1.0),
               "seed": field(body, "seed", int), "do_sample": temperature > 0, "top_k": 0}
    if temperature > 0:
        options["temperature"] = temperature
    return Ask(prompts, options, bool(field(body, "stream", bool, False)), openai=True)


class TokenStream:
    """A streamer (Hugging Face's put/end) in the generating thread that feeds an asyncio queue: ("tokens",
    [one id per row]) each step, ("end", None) at the end; `cancel()` stops the decoding at its next token."""

    class Cancelled(Exception):
        pass

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue, self.prompt_seen, self.cancelled = loop, queue, False, False

    def _send(self, event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def put(self, ids) -> None:
        if self.cancelled:
            raise TokenStream.Cancelled()
        if not self.prompt_seen:  # the first call hands over the prompts: the options were all accepted
            self.prompt_seen = True
            self._send(("start", None))
            return
        self._send(("tokens", np.asarray(ids).reshape(-1).tolist()))

    def end(self) -> None:
        self._send(("end", None))

    def cancel(self) -> None:
        self.cancelled = True


class Decoding:
    """One request's decoding: started in a thread, read as events (rows' tokens, then the result)."""

    def __init__(self, generator, tokenizer, ask: Ask, name: str):
        self.generator, self.tokenizer, self.ask, self.name = generator, tokenizer, ask, name
        self.id, self.created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        self.queue: asyncio.Queue = asyncio.Queue()
        self.stream = TokenStream(asyncio.get_running_loop(), self.queue)
        eos = ask.options.get("eos_token_id", generator.config.get("eos_token_id"))
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.ids = [[] for _ in ask.prompts]
        self.shown = ["" for _ in ask.prompts]

    async def start(self) -> None:
        """Starts decoding; a RequestError if the Generator refuses the prompts or options (nothing sent yet)."""
        loop = asyncio.get_running_loop()
        self.future = loop.run_in_executor(None, self._generate)
        self.future.add_done_callback(lambda done: self.queue.put_nowait(("done", done)))
        kind, value = await self.queue.get()
        if kind == "done":
            self._raise(value)

    def _generate(self):
        return self.generator.generate(self.ask.prompts, streamer=self.stream, return_dict_in_generate=True,
                                       **self.ask.options)

    @staticmethod
    def _raise(done) -> None:
        error = done.exception()
        if isinstance(error, ValueError):
            raise RequestError(400, str(error))
        if isinstance(error, MemoryError):
            raise RequestError(507, f"not enough memory for this request ({error})")
        if error is not None:
            raise error

    async def steps(self):
        """Per step, the (row, token, text piece) of each row still going; ends when the decoding ends."""
        try:
            while True:
                kind, value = await self.queue.get()
                if kind == "tokens":
                    yield [(r, token, self._piece(r, token)) for r, token in enumerate(value)
                           if not (self.ids[r] and self.ids[r][-1] in self.eos)]
                elif kind == "done":
                    self._raise(value)
                    return
        finally:  # a client gone mid-stream: the thread stops at its next token
            self.stream.cancel()

    def _piece(self, row: int, token: int) -> str:
        self.ids[row].append(token)
        if self.tokenizer is None:
            return f" {token}" if len(self.ids[row]) > 1 else str(token)
        text = self.tokenizer.decode(self.ids[row])
        piece = text[len(self.shown[row]):] if text.startswith(self.shown[row]) else text
        self.shown[row] = text
        return piece

    def result(self) -> dict:
        """The finished request: each row's new tokens, text where there is a tokenizer, why it stopped."""
        generation = self.future.result()
        rows, lengths = generation.rows(), generation.prompt_mask.sum(axis=1)
        new = [row[int(n):] for row, n in zip(rows, lengths)]
        return {"sequences": rows, "new": new, "prompt_tokens": int(lengths.sum()),
                "texts": [self.tokenizer.decode(ids) if self.tokenizer else " ".join(map(str, ids)) for ids in new],
                "finish_reasons": ["stop" if ids and ids[-1] in self.eos else "length" for ids in new]}

    # --- the two wire formats -------------------------------------------------------------------------------

    async def ndjson(self):
        async for step in self.steps():
            for row, token, piece in step:
                yield json.dumps({"row": row, "token": token, "text": piece}) + "\n"
        yield json.dumps(self.native_body()) + "\n"

    def native_body(self) -> dict:
        done = self.result()
        return {"done": True, "sequences": done["sequences"], "texts": done["texts"],
                "finish_reasons": done["finish_reasons"]}

    def completion(self, choices: list[dict], usage: dict | None = None) -> dict:
        body = {"id": self.id, "object": "text_completion", "created": self.created, "model": self.name,
                "choices": choices}
        return body | ({"usage": usage} if usage is not None else {})

    def openai_body(self) -> dict:
        done = self.result()
        completion = sum(len(ids) for ids in done["new"])
        return self.completion([{"index": i, "text": text, "token_ids": ids, "logprobs": None, "finish_reason": why}
                                for i, (text, ids, why) in enumerate(zip(done["texts"], done["new"],
                                                                         done["finish_reasons"]))],
                               {"prompt_tokens": done["prompt_tokens"], "completion_tokens": completion,
                                "total_tokens": done["prompt_tokens"] + completion})

    async def server_sent_events(self):
        async for step in self.steps():
            chunk = self.completion([{"index": row, "text": piece, "token_ids": [token], "logprobs": None,
                                      "finish_reason": None} for row, token, piece in step])
            yield f"data: {json.dumps(chunk)}\n\n"
        done = self.result()
        last = self.completion([{"index": i, "text": "", "token_ids": [], "logprobs": None, "finish_reason": why}
                                for i, why in enumerate(done["finish_reasons"])])
        yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"

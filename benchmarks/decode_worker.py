"""One contender of benchmarks/decode.py in its own process: it loads one model once, then answers
one JSON line per request read from standard input with one JSON line of timings, so the driver can
time the contenders round-robin while each keeps its own threads, allocator and peak RSS.

    python decode_worker.py KIND MODEL        KIND: hf (transformers' generate, MODEL a save_pretrained
                                              folder), genai (onnxruntime-genai, MODEL its builder's
                                              folder), tfc (tfc_runtime.Generator, MODEL an .onnx file)
    request:  {"batch": 8, "prompt": 32, "new": 128, "seed": 0, "use_cache": true}  or  {"quit": true}
    answer:   {"seconds", "first_token_seconds", "run_seconds" (tfc), "tokens" (row 0's new ids),
               "cache_bytes" (tfc: the present cache after the last step), "rss_peak_kib", "rss_kib"}

It imports only NumPy at the top: the genai worker runs in onnxruntime-genai's own virtual environment.
Greedy everywhere, every row makes exactly `new` tokens (min_new_tokens = max_new_tokens)."""
from __future__ import annotations

import json
import sys
import time

import numpy as np

THREADS = 2


def prompt(request: dict, vocab: int) -> np.ndarray:
    return np.random.default_rng(request.get("seed", 0)).integers(3, vocab, (request["batch"], request["prompt"]))


class FirstToken:
    """A transformers streamer that notes when the first new token arrives (its first `put` is the prompt)."""

    def __init__(self):
        self.start, self.puts, self.first = time.perf_counter(), 0, None

    def put(self, ids):
        self.puts += 1
        if self.puts == 2:
            self.first = time.perf_counter() - self.start

    def end(self):
        pass


class HuggingFace:
    def __init__(self, folder: str):
        import torch
        import transformers

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
        self.vocab = self.model.config.vocab_size

    def __call__(self, request: dict) -> dict:
        ids = self.torch.from_numpy(prompt(request, self.vocab))
        streamer = FirstToken()
        with self.torch.inference_mode():
            out = self.model.generate(ids, attention_mask=self.torch.ones_like(ids), max_new_tokens=request["new"],
                                      min_new_tokens=request["new"], do_sample=False, streamer=streamer,
                                      pad_token_id=0)
        seconds = time.perf_counter() - streamer.start
        return {"seconds": seconds, "first_token_seconds": streamer.first,
                "tokens": out[0, ids.shape[1]:].tolist()}


class GenAI:
    def __init__(self, folder: str):
        import onnxruntime_genai as og

        self.og = og
        self.model = og.Model(folder)
        with open(f"{folder}/genai_config.json", encoding="utf-8") as f:
            self.vocab = json.load(f)["model"]["vocab_size"]

    def __call__(self, request: dict) -> dict:
        ids = prompt(request, self.vocab).astype(np.int32)
        length = request["prompt"] + request["new"]
        start = time.perf_counter()
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=length, min_length=length, do_sample=False, batch_size=request["batch"])
        generator = self.og.Generator(self.model, params)
        generator.append_tokens(ids)
        first = None
        while not generator.is_done():
            generator.generate_next_token()
            first = first or time.perf_counter() - start
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "first_token_seconds": first,
                "tokens": [int(t) for t in generator.get_sequence(0)[request["prompt"]:]]}


class Ours:
    def __init__(self, path: str):
        import onnxruntime as ort

        from tfc_runtime import Generator
        import tfc_runtime.generation as generation

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.inter_op_num_threads = 1
        # the intra-op threads spin as onnxruntime's default has them (and genai's sessions, and tfc_runtime's):
        # turned off, our llama-style step measured 20-25% slower (2026-12-07)
        self.generator = Generator(path, intra_op_threads=THREADS, session_options=options)
        self.vocab = self.generator.vocab
        self.steps = None
        cached = generation.CachedSteps

        worker = self

        class Noted(cached):  # keeps the last steps object, to read its cache's size after the loop
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                worker.steps = self

        generation.CachedSteps = Noted

    def __call__(self, request: dict) -> dict:
        ids = prompt(request, self.vocab)
        result = self.generator.generate(ids, max_new_tokens=request["new"], min_new_tokens=request["new"],
                                         use_cache=request.get("use_cache", True), return_dict_in_generate=True)
        answer = {"seconds": result.seconds, "first_token_seconds": result.first_token_seconds,
                  "run_seconds": result.run_seconds, "tokens": result.sequences[0, ids.shape[1]:].tolist()}
        if request.get("use_cache", True) and self.steps is not None:
            answer["cache_bytes"] = sum(int(np.prod(value.shape())) * np.dtype(c.dtype).itemsize
                                        for c in self.steps.layout.carried
                                        for value in [self.steps.values[c.present]])
        return answer


def status_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (the peak) of this process: getrusage's ru_maxrss would keep the driver's RSS
    at the fork, which Linux carries across exec."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def main() -> None:
    kind, path = sys.argv[1:3]
    run = {"hf": HuggingFace, "genai": GenAI, "tfc": Ours}[kind](path)
    print(json.dumps({"ready": True, "rss_kib": status_kib("VmRSS")}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        try:
            answer = run(request)
        except Exception as error:  # noqa: BLE001  (a contender that fails is reported, not fatal)
            answer = {"error": f"{type(error).__name__}: {error}"[:300]}
        answer.update(rss_peak_kib=status_kib("VmHWM"), rss_kib=status_kib("VmRSS"))
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()

"""The models benchmarks/decode.py generates with, made from one random checkpoint per model: the
Hugging Face folder (transformers), onnxruntime-genai's model builder output, and our `tfc import-hf` +
compile variants; and the small sliding-window decoder (with its full-attention twin) for the
memory-over-length part."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# genai's builder makes a model for one execution provider (`-e cpu`): ours for the same is `--target ort-cpu`
HEADLINE = "(c) tfcompiler --target ort-cpu"
PORTABLE = "(c) tfcompiler --target portable"
GENAI_VENVS = [os.environ.get("TFC_GENAI_PYTHON", ""), "/work/venv-genai/bin/python",
               "/work/venv-bench-genai/bin/python"]


def genai_python() -> str | None:
    """The first Python that has onnxruntime-genai and what its model builder imports."""
    for python in filter(None, GENAI_VENVS):
        if Path(python).is_file() and subprocess.run(
                [python, "-c", "import onnxruntime_genai, onnx_ir, torch, transformers"],
                capture_output=True).returncode == 0:
            return python
    return None


def checkpoint(name: str, folder: Path, quick: bool) -> dict:
    """Save a random-weight checkpoint (seed 0) with a word-level tokenizer (the builder loads one);
    return its shape facts for the bandwidth bound."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    if name == "gpt2":
        config = (transformers.GPT2Config(n_layer=2, n_embd=128, n_head=2, vocab_size=1000, bos_token_id=2,
                                                  eos_token_id=2) if quick
                  else transformers.GPT2Config())
        model_class, layers, kv_heads, head = (transformers.GPT2LMHeadModel, config.n_layer, config.n_head,
                                               config.n_embd // config.n_head)
    else:  # the size of specs/llama-style.yaml
        config = transformers.LlamaConfig(hidden_size=128 if quick else 512, num_hidden_layers=2 if quick else 8,
                                          num_attention_heads=8, num_key_value_heads=2,
                                          intermediate_size=344 if quick else 1376,
                                          vocab_size=1000 if quick else 32000, max_position_embeddings=2048,
                                          rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
        model_class, layers, kv_heads, head = (transformers.LlamaForCausalLM, config.num_hidden_layers,
                                               config.num_key_value_heads,
                                               config.hidden_size // config.num_attention_heads)
    torch.manual_seed(0)
    model = model_class(config).eval()
    model.save_pretrained(folder)
    vocab = {f"t{i}": i for i in range(config.vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="t0", bos_token="t1",
                                         eos_token="t2").save_pretrained(folder)
    gathered = {"transformer.wpe.weight"} | ({"model.embed_tokens.weight"} if name == "llama" else set())
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "streamed_bytes": sum(p.numel() * p.element_size() for n, p in model.named_parameters()
                                  if n not in gathered),
            "kv_bytes_per_position": 2 * layers * kv_heads * head * 4}


def genai_model(hf: Path, out: Path) -> tuple[Path | None, str | None]:
    """onnxruntime-genai's builder on the checkpoint, set to 2 intra-op threads; (folder, None) or (None, why)."""
    python = genai_python()
    if python is None:
        return None, "no Python with onnxruntime-genai and its builder's imports (set TFC_GENAI_PYTHON)"
    done = subprocess.run([python, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out),
                           "-p", "fp32", "-e", "cpu"], capture_output=True, text=True)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].replace(str(hf), "CHECKPOINT") if lines else f"exit status {done.returncode}"
        return None, f"its model builder refused: `{why}`"
    config_path = out / "genai_config.json"
    config = json.loads(config_path.read_text())
    config["model"]["decoder"]["session_options"].update(intra_op_num_threads=2, inter_op_num_threads=1)
    config_path.write_text(json.dumps(config, indent=1))
    return out, None


def build_contenders(name: str, tmp: Path, quick: bool) -> tuple[dict, dict]:
    """label -> (worker kind, model path, python) and the checkpoint's facts (+ genai_note)."""
    from tfcompiler import compile_spec
    from tfcompiler.importers.hf import import_hf

    folder = tmp / name
    info = checkpoint(name, folder / "hf", quick)
    contenders = {"(a) transformers": ("hf", folder / "hf", sys.executable)}
    genai, info["genai_note"] = genai_model(folder / "hf", folder / "genai")
    if genai:
        contenders["(b) onnxruntime-genai"] = ("genai", genai, genai_python())
    spec, weights = import_hf(folder / "hf", folder / "imported")[:2]
    variants = {HEADLINE: {"target": "ort-cpu"}, PORTABLE: {},
                "(c) tfcompiler --target ort-cpu --opset 17": {"target": "ort-cpu", "opset": 17},
                "(d) tfcompiler --no-cache (recompute)": {"cache": False}}
    if quick:  # the same code paths as (c)
        del variants[PORTABLE], variants["(c) tfcompiler --target ort-cpu --opset 17"]
    for i, (label, flags) in enumerate(variants.items()):
        path = folder / f"tfc-{i}.onnx"
        compile_spec(spec, weights=str(weights), **flags).model.save(str(path))
        contenders[label] = ("recompute" if flags.get("cache") is False else "tfc", path, sys.executable)
    return contenders, info


WINDOW_SPEC = """\
tfc: 1
name: {name}
topology: decoder
model: {{width: 256, heads: 4, kv_heads: 2, ffn_width: 688, vocab_size: 1000, max_length: 32768, bias: false}}
positional: {{kind: rope, base: 1000000}}
block:
  placement: pre
  norm: {{kind: rms_norm, epsilon: 1e-5}}
  attention: {attention}
  ffn: {{activation: swiglu}}
decoder: {{layers: 4}}
head: {{kind: lm, tied: false}}
"""


def window_models(tmp: Path, quick: bool) -> dict:
    """A small specs/sliding-window-decoder.yaml (width 256, 4 layers, window 64) and its full-attention twin
    (not with `quick`)."""
    from tfcompiler import compile_spec

    out = {}
    for label, attention in [("sliding window 64", "{kind: sliding_window, window: 64}"),
                             ("full attention", "{kind: multi_head}")][:1 if quick else 2]:
        spec = tmp / f"window-{len(out)}.yaml"
        spec.write_text(WINDOW_SPEC.format(name=f"window-{len(out)}", attention=attention))
        path = tmp / f"window-{len(out)}.onnx"
        compile_spec(spec, seed=0).model.save(str(path))
        out[label] = path
    return out

"""onnxruntime-genai's ``genai_config.json`` for a compiled decoder, or why onnxruntime-genai cannot run it.

onnxruntime-genai loads a model folder whose genai_config.json names the decoder's file, sizes and I/O.
Every decoder-only type it knows (llama, mistral, phi3, qwen2, ...) loads as one class,
DecoderOnly_Model; ``decoder`` is the generic name among them, so it implies no architecture's quirks
and is the type written here. ``gpt2`` is the exception: it expects one combined ``past_%d`` tensor
(2, B, H, P, Dh) per layer, which a tfcompiler model does not have. The form it describes:

    input_ids (B, S), attention_mask (B, P+S), position_ids (B, S) when the graph takes them,
    past_key_values.%d.key / .value (B, Hkv, P, Dh)
      -> logits, present.%d.key / .value (B, Hkv, P+S, Dh)

with ``past_present_share_buffer: false``: the graph appends the new keys to the past ones, so the
present grows by the new tokens at each call rather than being written into a max_length buffer.
``logits_to_keep`` keeps its default (every position; genai reads the last one).

A decoder-only model with a KV cache has that form unless it carries more between calls (the
fixed-size layer states of linear attention, ``past_state.N.*``) or takes inputs genai does not feed;
:func:`why_not` says which.
"""
from __future__ import annotations

import re

PAST_KEY = re.compile(r"past_key_values\.(\d+)\.(key|value)")
FED = {"input_ids", "attention_mask", "position_ids"}  # the inputs genai feeds besides the past keys and values
MODEL_TYPE = "decoder"
# onnxruntime-genai's execution provider names for the targets whose kernels need one
PROVIDERS = {"ort-cuda": [{"cuda": {}}]}


def why_not(compiled, state: dict) -> str:
    """"" when onnxruntime-genai can run the compiled model, else why it cannot. ``state``: past input ->
    {present, shape, dtype}, as generation.json records it."""
    spec, metadata = compiled.spec, compiled.model.metadata
    if spec.topology != "decoder":
        return f"it runs decoder-only models, this one is {spec.topology}"
    if metadata["tfcompiler.cache"] != "kv":
        return f"it runs decoders with a KV cache, this one has {metadata['tfcompiler.cache']}"
    defaults = {name for name, _ in compiled.model.initializers}
    for port in compiled.model.proto.graph.input:
        if port.name not in FED | defaults and not PAST_KEY.fullmatch(port.name):
            carried = f" (carried from call to call as {state[port.name]['present']})" if port.name in state else ""
            return f"it feeds input_ids, attention_mask, position_ids and past keys and values only, not " \
                   f"{port.name}{carried}"
    layers = _layers(state)
    if layers != list(range(len(layers))) or len(_heads_and_widths(state)) != 1:
        return "it needs a key and a value cache of one shape for each layer 0..N-1"
    return ""


def _layers(state: dict) -> list[int]:
    """The layers with a past key or value, in order."""
    return sorted({int(PAST_KEY.fullmatch(name).group(1)) for name in state if PAST_KEY.fullmatch(name)})


def _heads_and_widths(state: dict) -> set[tuple[int, int]]:
    """(Hkv, Dh) of each past key and value (B, Hkv, P, Dh)."""
    return {(entry["shape"][1], entry["shape"][3]) for name, entry in state.items() if PAST_KEY.fullmatch(name)}


def genai_config(compiled, state: dict, filename: str) -> dict:
    """The genai_config.json of a model that onnxruntime-genai can run (`why_not` is "") from ``filename``."""
    spec, proto = compiled.spec, compiled.model.proto
    target = compiled.model.metadata["tfcompiler.target"]
    (kv_heads, head_size), = _heads_and_widths(state)
    inputs = {port.name for port in proto.graph.input}
    decoder = {
        "filename": filename, "session_options": {"log_id": "onnxruntime-genai",
                                                  "provider_options": PROVIDERS.get(target, [])},
        "hidden_size": spec.model.width, "head_size": head_size, "num_attention_heads": spec.model.heads,
        "num_key_value_heads": kv_heads, "num_hidden_layers": len(_layers(state)),
        "inputs": {**{name: name for name in FED & inputs},
                   "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
        "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value"}}
    ids = spec.generation.settings() if spec.generation else {}
    model = {"type": MODEL_TYPE, "context_length": spec.model.max_length, "vocab_size": spec.model.vocab_size,
             "decoder": decoder, **{key: value for key, value in ids.items() if key.endswith("_token_id")}}
    search = {"do_sample": False, "num_beams": 1, "max_length": spec.model.max_length,
              "past_present_share_buffer": False}
    return {"model": model, "search": search}

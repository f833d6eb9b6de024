"""Reformer (ReformerModel / ReformerModelWithLMHead, and its sequence classifier and question answering)."""
from __future__ import annotations

import math

import numpy as np

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, ffn_section, linear_weights, norm_weights
from .heads import sequence_classifier, token_head, with_head


def reformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """Reformer (ReformerModel / ReformerModelWithLMHead): reversible blocks of LSH attention as the
    authors' trax code runs it (see tfcompiler.builders.attention.lsh), its chunks before and after (the
    look-ahead) included, and local attention where attn_layers says so (`block_local`: in decoders a
    chunk and the chunks before it, causal; in encoders the chunks before and after it rolled round the
    sequence's ends, `wrap`), axial position embeddings flattened into one learned table, an untied LM
    head over both streams. Hugging Face draws the rotations on every call as
    torch.manual_seed(hash_seed); torch.randn(heads, head_width, rounds, buckets / 2), the same for every
    layer: they are drawn here once, with torch, into each layer's `attention.rotations`."""
    layers, buckets, decoder = config["attn_layers"], config.get("num_buckets"), bool(config.get("is_decoder"))
    problems = []
    if set(layers) - {"lsh", "local"}:
        problems.append(f"attn_layers {layers}: 'lsh' and 'local' layers only")
    if "local" in layers and decoder and config.get("local_num_chunks_after", 0) != 0:
        problems.append("local_num_chunks_after must be 0 in a decoder (Hugging Face's last chunk would see the "
                        "first, rolled round, which no causal step could compute from a cache)")
    if "local" in layers and decoder and config.get("local_num_chunks_before", 1) > 1:
        problems.append("local_num_chunks_before must be 0 or 1 in a decoder (Hugging Face's rolls stop at the ends: "
                        "an input of no more chunks than that sees its own chunk twice, which depends on the length "
                        "and has no causal step from a cache)")
    if not isinstance(buckets, int):
        problems.append(f"num_buckets {buckets!r}: only one even number of buckets is supported (Hugging Face sets "
                        "it from the input length when null, and factorises lists)")
    if config.get("hash_seed") is None:
        problems.append("hash_seed is null: Hugging Face draws new rotations on every call; set a hash_seed")
    if problems:
        raise TfcError("reformer: " + "; ".join(problems))
    try:
        import torch
    except ImportError:
        raise TfcError("reformer: its hashing rotations are drawn by torch from hash_seed: pip install "
                       "'tfcompiler[hf]'") from None
    width, heads, head_width, rounds = (config["hidden_size"], config["num_attention_heads"],
                                        config["attention_head_size"], config["num_hashes"])
    torch.manual_seed(config["hash_seed"])
    rotations = torch.randn((heads, head_width, rounds, buckets // 2), dtype=torch.float32).numpy()
    stack = "decoder" if decoder else "encoder"
    local = {"kind": "block_local", "block": config.get("local_attn_chunk_length", 64),
             "memory_blocks": config.get("local_num_chunks_before", 1)}
    if not decoder:  # Hugging Face rolls the chunks round the ends; in a decoder the causal mask hides them
        local.update(after=config.get("local_num_chunks_after", 0), wrap=True)
    lsh_chunks = (config.get("lsh_num_chunks_before", 1), config.get("lsh_num_chunks_after", 0))
    neighbours = {"chunks_before": lsh_chunks[0], "chunks_after": lsh_chunks[1]} if lsh_chunks != (1, 0) else {}
    # Hugging Face pads the input to its layers' chunk lengths' least common multiple; the chunks rolled round
    # the ends see that padding (the decoder's local layers do not: their rolled chunks are all in the future)
    multiple = math.lcm(config["lsh_attn_chunk_length"], local["block"]) if set(layers) == {"lsh", "local"} else None
    if multiple is not None and multiple != config["lsh_attn_chunk_length"]:
        neighbours["length_multiple"] = multiple
    if multiple is not None and multiple != local["block"] and not decoder:
        local["length_multiple"] = multiple
    overrides = [{"layers": [i, i], "block": {"attention": local}} for i, kind in enumerate(layers) if kind == "local"]
    spec = {
        "topology": stack,
        "model": {"width": width, "heads": heads, "head_width": head_width, "ffn_width": config["feed_forward_size"],
                  "vocab_size": config["vocab_size"], "max_length": config["max_position_embeddings"]},
        "positional": "learned",
        "block": {"placement": "reversible", "norm": {"kind": "layer_norm", "epsilon": config["layer_norm_eps"]},
                  "attention": {"kind": "lsh", "buckets": buckets, "rounds": rounds,
                                "chunk": config["lsh_attn_chunk_length"], "rotations": "weights",
                                "same_bucket": False, "look_back": "rolled", "scale": 1.0, "key_epsilon": 1e-6,
                                **neighbours},
                  "ffn": ffn_section(config, activation_kind(config["hidden_act"]))},
        stack: {"layers": len(layers), **({"overrides": overrides} if overrides else {})},
        "head": {"kind": "lm", "tied": False, "bias": True} if w.has("lm_head.decoder.weight") else {"kind": "none"}}
    if config.get("axial_pos_embds", True):  # position i·ax1 + j is [w0[i]; w1[j]]
        shape = tuple(config["axial_pos_shape"])
        tables = [w(f"embeddings.position_embeddings.weights.{i}") for i in range(len(shape))]
        positions = np.concatenate([np.broadcast_to(t, shape + t.shape[-1:]) for t in tables], axis=-1)
        positions = positions.reshape(-1, width)
    else:
        positions = w("embeddings.position_embeddings.embedding.weight")
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               "embeddings.positions.weight": positions[:config["max_position_embeddings"]],
               **norm_weights(w, f"{stack}.final_norm", "encoder.layer_norm")}
    zeros = np.zeros(heads * head_width, np.float32)
    for i in range(len(layers)):
        ours, theirs = f"{stack}.layers.{i}", f"encoder.layers.{i}"
        projections = ("query_key", "value") if layers[i] == "lsh" else ("query", "key", "value")
        for name in projections:  # Reformer's attention has no biases: ours are zero
            weights[f"{ours}.attention.{name}.weight"] = w(f"{theirs}.attention.self_attention.{name}.weight").T
            weights[f"{ours}.attention.{name}.bias"] = zeros
        weights[f"{ours}.attention.output.weight"] = w(f"{theirs}.attention.output.dense.weight").T
        weights[f"{ours}.attention.output.bias"] = np.zeros(width, np.float32)
        if layers[i] == "lsh":
            weights[f"{ours}.attention.rotations"] = rotations
        weights.update({**norm_weights(w, f"{ours}.attention_norm", f"{theirs}.attention.layer_norm"),
                        **norm_weights(w, f"{ours}.ffn_norm", f"{theirs}.feed_forward.layer_norm"),
                        **linear_weights(w, f"{ours}.ffn.up", f"{theirs}.feed_forward.dense.dense", True),
                        **linear_weights(w, f"{ours}.ffn.down", f"{theirs}.feed_forward.output.dense", True)})
    if w.has("classifier.out_proj.weight"):  # ReformerForSequenceClassification: both streams of the first token
        if decoder:
            raise TfcError("ReformerForSequenceClassification with is_decoder=true classifies the first token of a "
                           "causal stack, which has seen only itself; tfcompiler's classifier over a causal stack "
                           "reads the last real token (import it with is_decoder=false)")
        spec["head"], head = sequence_classifier(w, "classifier.dense", "classifier.out_proj")
        weights.update(head)
    with_head(spec, weights, token_head(w, config))  # ReformerForQuestionAnswering: over both streams
    if spec["head"]["kind"] == "lm":
        weights.update(linear_weights(w, "lm_head", "lm_head.decoder", True))
        # transformers 4 tied ReformerOnlyLMHead.bias to decoder.bias; 5 keeps both and reads only the decoder's
        w.never_read("lm_head.bias")
    return spec, weights

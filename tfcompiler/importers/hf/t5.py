"""T5: T5Model, T5ForConditionalGeneration with its LM head, and the encoder alone (T5EncoderModel,
T5ForTokenClassification with its per-token classifier). A head tied to the embedding reads the
decoder's output scaled by d_model^-0.5 (Hugging Face's T5): the scale is folded into the decoder's
final RMSNorm weight, which only the head reads.

T5ForQuestionAnswering (the `span` head) and T5ForSequenceClassification (the `classifier` head:
dense, tanh, out_proj, at the last real token) read the decoder, which Hugging Face feeds the input
shifted right (decoder_start_token_id, then input_ids but the last) when it is given no decoder
input. The compiled model takes decoder_input_ids like any encoder-decoder: the caller feeds that
shifted input, with decoder_attention_mask equal to attention_mask (right padding). Hugging Face's
classifier reads the last eos token of input_ids; the compiled one the last real decoder position, which
is the same where every row ends with its eos (as T5's tokenizer writes it)."""
from __future__ import annotations


from ...errors import TfcError
from .checkpoint import Checkpoint, ffn_section
from .heads import architecture, sequence_classifier, token_head, with_head


def t5(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    projection = config.get("feed_forward_proj", "relu")
    activation = {"relu": "relu", "gated-gelu": "geglu_tanh"}.get(projection)
    if activation is None:
        raise TfcError(f"T5 with feed_forward_proj {projection!r} is not supported yet; supported: relu, gated-gelu")
    eps = config["layer_norm_epsilon"]
    layers = {"encoder": config["num_layers"], "decoder": config.get("num_decoder_layers") or config["num_layers"]}
    if not w.has("decoder.final_layer_norm.weight"):  # the encoder alone
        del layers["decoder"]
    spec = {
        "model": {"width": config["d_model"], "heads": config["num_heads"], "head_width": config["d_kv"],
                  "ffn_width": config["d_ff"], "vocab_size": config["vocab_size"],
                  "max_length": config.get("n_positions", 512), "bias": False},
        "positional": {"kind": "t5", "num_buckets": config["relative_attention_num_buckets"],
                       "max_distance": config.get("relative_attention_max_distance", 128)},
        "block": {"placement": "pre", "norm": {"kind": "rms_norm", "epsilon": eps},
                  "attention": {"kind": "multi_head", "scale": 1.0}, "ffn": ffn_section(config, activation)},
        **{stack: {"layers": count, "final_norm": True} for stack, count in layers.items()}}
    if "decoder" not in layers:
        spec["topology"] = "encoder"
    weights = {"embeddings.tokens.weight": w("shared.weight")}
    for copy in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        w.tied(copy, "shared.weight")  # lm_head: when tie_word_embeddings (else it is imported below)
    # the original T5 checkpoints carry a relative bias for the first cross-attention, which T5 never reads
    w.never_read("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight")
    attention = {"query": "q", "key": "k", "value": "v", "output": "o"}
    ffn = {"gate": "wi_0", "up": "wi_1", "down": "wo"} if activation == "geglu_tanh" else {"up": "wi", "down": "wo"}
    for stack, count in layers.items():
        weights[f"{stack}.relative_attention_bias.weight"] = \
            w(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
        weights[f"{stack}.final_norm.weight"] = w(f"{stack}.final_layer_norm.weight")
        sublayers = ["attention"] + (["cross_attention"] if stack == "decoder" else []) + ["ffn"]
        for i in range(count):
            ours, theirs = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            for index, sublayer in enumerate(sublayers):
                weights[f"{ours}.{sublayer}_norm.weight"] = w(f"{theirs}.{index}.layer_norm.weight")
                module = {"attention": "SelfAttention", "cross_attention": "EncDecAttention"}.get(sublayer)
                names = attention if module else ffn
                for target, source in names.items():
                    weights[f"{ours}.{sublayer}.{target}.weight"] = \
                        w(f"{theirs}.{index}.{module or 'DenseReluDense'}.{source}.weight").T
    head = token_head(w, config)
    if head is not None and "decoder" in layers and head[0]["kind"] != "span":
        raise TfcError(f"{architecture(config)}: its {head[0]['kind']} head reads the decoder's output; "
                       "tfcompiler's token classifier labels the tokens of one stack (an encoder or a decoder)")
    if w.has("classification_head.out_proj.weight"):  # T5ForSequenceClassification: at the decoder's eos
        head = sequence_classifier(w, "classification_head.dense", "classification_head.out_proj")
        head[0]["pooling"] = "last"
    # T5ForTokenClassification (the encoder alone), T5ForQuestionAnswering, T5ForSequenceClassification
    if with_head(spec, weights, head):
        return spec, weights
    if w.has("lm_head.weight") or "T5ForConditionalGeneration" in (config.get("architectures") or []):
        tied = config.get("tie_word_embeddings", True)
        spec["head"] = {"kind": "lm", "tied": tied}
        if tied:
            weights["decoder.final_norm.weight"] = weights["decoder.final_norm.weight"] * config["d_model"] ** -0.5
        else:
            weights["lm_head.weight"] = w("lm_head.weight").T
    return spec, weights

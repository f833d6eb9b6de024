"""Hugging Face SpeechT5ForTextToSpeech (model_type ``speecht5``; keys under ``speecht5.`` and
``speech_decoder_postnet.``) as an encoder-decoder: the encoder reads `phonemes` with no pre-net convolutions
(SpeechT5's text pre-net is the token table alone), the decoder `mel_frames`, and the `spectrogram` head is its
speech-decoder post-net (mel and stop-token linears, the convolutional post-net with its residual).

- Positions: both pre-nets' scaled sinusoids x + α·PE are the model's `scaled_sinusoidal` (interleaved, one α per
  stack, `encode_positions.alpha`); max_length is the longer of max_text_positions and max_speech_positions (Hugging
  Face's tables stop at their own; the rows are the same function of the position).
- The encoder's relative position bias (SpeechT5RelativePositionalEncoding: q·pe_k[clip(i - j, -L, L - 1) + L],
  the query scaled, one table for every layer, L = encoder_max_relative_position) is Shaw's key term (`shaw` with
  `value_term: false`, `max_distance: L`) in each encoder layer, with the table read backwards: Shaw's row for
  the distance n = j - i in [-L, L] is pe_k[L - n] for n > -L, and pe_k[2L - 1] at n = -L, where SpeechT5's
  clip(i - j) stops one short of L. So no option of `shaw` is needed; the same numbers, one row more.
- The encoder's layer_norm before its first layer is the `phonemes` input's `norm` (after the positions); the
  decoder has none. Layers are post-norm, as Hugging Face's.
- The speaker projection speaker_embeds_layer (width + speaker_embedding_dim -> width) is split into its two
  blocks; the post-net's BatchNorm (eval mode, its running statistics) is folded into each convolution, which has
  no bias of its own.

The decoder pre-net's dropout, which SpeechT5 applies in eval mode too ("consistent dropout"), is not compiled:
the imported model is Hugging Face's with that dropout removed (see builders/inputs/mel_frames.py). Other SpeechT5
models (speech-to-text, speech-to-speech: a waveform encoder, a text decoder) are refused by name.
"""
from __future__ import annotations

import numpy as np

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, linear_weights, norm_weights

ENCODER, DECODER, POSTNET = "speecht5.encoder", "speecht5.decoder", "speech_decoder_postnet"
BATCH_NORM_EPSILON = 1e-5  # torch.nn.BatchNorm1d's default, which SpeechT5 keeps


def speecht5(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    if not (w.has(f"{ENCODER}.prenet.embed_tokens.weight") and w.has(f"{POSTNET}.feat_out.weight")):
        raise TfcError("of the SpeechT5 models only SpeechT5ForTextToSpeech (a text encoder, a speech decoder) is "
                       "supported; speech-to-text and speech-to-speech read waveforms")
    for a, b in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if config[a] != config[b]:
            raise TfcError(f"SpeechT5 with {a} {config[a]} != {b} {config[b]} is not supported yet (one model.heads "
                           "and ffn_width for both stacks)")
    width, eps, reach = config["hidden_size"], config["layer_norm_eps"], config["encoder_max_relative_position"]
    layers = {"encoder": config["encoder_layers"], "decoder": config["decoder_layers"]}
    spec = {
        "model": {"width": width, "heads": config["encoder_attention_heads"], "ffn_width": config["encoder_ffn_dim"],
                  "vocab_size": config["vocab_size"],
                  "max_length": max(config["max_text_positions"], config["max_speech_positions"])},
        "input": {"kind": "phonemes", "convolutions": 0, "norm": True},
        "positional": {"kind": "scaled_sinusoidal", "layout": "interleaved", "initial_scale": 1.0},
        "block": {"placement": "post", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": {"activation": activation_kind(config["hidden_act"])}},
        "encoder": {"layers": layers["encoder"],
                    "block": {"positional": {"kind": "shaw", "max_distance": reach, "value_term": False}}},
        "decoder": {"layers": layers["decoder"],
                    "input": {"kind": "mel_frames", "mels": config["num_mel_bins"],
                              "prenet_layers": config["speech_decoder_prenet_layers"],
                              "prenet_units": config["speech_decoder_prenet_units"],
                              "speaker_embedding": config["speaker_embedding_dim"]}},
        "head": {"kind": "spectrogram", "mels": config["num_mel_bins"], "reduction": config["reduction_factor"],
                 "postnet_layers": config["speech_decoder_postnet_layers"],
                 "postnet_channels": config["speech_decoder_postnet_units"],
                 "postnet_kernel": config["speech_decoder_postnet_kernel"]}}
    weights = {"embeddings.tokens.weight": w(f"{ENCODER}.prenet.embed_tokens.weight"),
               **norm_weights(w, "encoder.embeddings.norm", f"{ENCODER}.wrapped_encoder.layer_norm")}
    for stack in ("encoder", "decoder"):
        theirs = ENCODER if stack == "encoder" else DECODER
        weights[f"{stack}.embeddings.positions.scale"] = w(f"{theirs}.prenet.encode_positions.alpha").reshape(1)
        w.never_read(f"{theirs}.prenet.encode_positions.pe")  # the sinusoid table, where older versions saved it
    weights.update(decoder_prenet(w, config, width))
    table = shaw_table(w(f"{ENCODER}.wrapped_encoder.embed_positions.pe_k.weight"))
    for i in range(layers["encoder"]):
        ours, theirs = f"encoder.layers.{i}", f"{ENCODER}.wrapped_encoder.layers.{i}"
        weights.update(attention(w, f"{ours}.attention", f"{theirs}.attention"))
        weights[f"{ours}.attention.relative.key.weight"] = table
        weights.update(sublayer_norms_and_ffn(w, ours, theirs, {"attention_norm": "layer_norm"}))
    for i in range(layers["decoder"]):
        ours, theirs = f"decoder.layers.{i}", f"{DECODER}.wrapped_decoder.layers.{i}"
        weights.update(attention(w, f"{ours}.attention", f"{theirs}.self_attn"))
        weights.update(attention(w, f"{ours}.cross_attention", f"{theirs}.encoder_attn"))
        weights.update(sublayer_norms_and_ffn(w, ours, theirs, {"attention_norm": "self_attn_layer_norm",
                                                                "cross_attention_norm": "encoder_attn_layer_norm"}))
    weights.update(postnet(w, config))
    return spec, weights


def shaw_table(pe_k: np.ndarray) -> np.ndarray:
    """SpeechT5's (2L, Dh) table by query-minus-key distance -> Shaw's (2L + 1, Dh) by key-minus-query distance
    n in [-L, L]: row n + L is pe_k[L - n], and n = -L, clipped one short by SpeechT5, pe_k[2L - 1]."""
    return np.concatenate([pe_k[-1:], pe_k[::-1]])


def attention(w: Checkpoint, ours: str, theirs: str) -> dict:
    names = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "output": "out_proj"}
    return {k: v for target, source in names.items()
            for k, v in linear_weights(w, f"{ours}.{target}", f"{theirs}.{source}", True).items()}


def sublayer_norms_and_ffn(w: Checkpoint, ours: str, theirs: str, norms: dict) -> dict:
    return {**{k: v for target, source in norms.items() for k, v in norm_weights(w, f"{ours}.{target}",
                                                                                    f"{theirs}.{source}").items()},
            **linear_weights(w, f"{ours}.ffn.up", f"{theirs}.feed_forward.intermediate_dense", True),
            **linear_weights(w, f"{ours}.ffn.down", f"{theirs}.feed_forward.output_dense", True),
            **norm_weights(w, f"{ours}.ffn_norm", f"{theirs}.final_layer_norm")}


def decoder_prenet(w: Checkpoint, config: dict, width: int) -> dict:
    ours, theirs = "decoder.embeddings", f"{DECODER}.prenet"
    weights = linear_weights(w, f"{ours}.prenet.projection", f"{theirs}.final_layer", True)
    for i in range(config["speech_decoder_prenet_layers"]):
        weights.update(linear_weights(w, f"{ours}.prenet.layers.{i}", f"{theirs}.layers.{i}", True))
    joined = w(f"{theirs}.speaker_embeds_layer.weight")  # (width, width + speaker): [states; speaker] in
    weights.update({f"{ours}.speaker_projection.weight": joined[:, :width].T,
                    f"{ours}.speaker_projection.speaker_weight": joined[:, width:].T,
                    f"{ours}.speaker_projection.bias": w(f"{theirs}.speaker_embeds_layer.bias")})
    return weights


def postnet(w: Checkpoint, config: dict) -> dict:
    """The mel and stop linears; each post-net convolution with its BatchNorm folded in: γ(conv(x) - μ)/√(σ² + ε)
    + β = conv'(x) with weight W·γ/√(σ² + ε) (per output channel) and bias β - μ·γ/√(σ² + ε)."""
    weights = {**linear_weights(w, f"{POSTNET}.feat_out", f"{POSTNET}.feat_out", True),
               **linear_weights(w, f"{POSTNET}.prob_out", f"{POSTNET}.prob_out", True)}
    for i in range(config["speech_decoder_postnet_layers"]):
        layer = f"{POSTNET}.layers.{i}"
        gain = w(f"{layer}.batch_norm.weight") / np.sqrt(w(f"{layer}.batch_norm.running_var") + BATCH_NORM_EPSILON)
        weights[f"{layer}.weight"] = w(f"{layer}.conv.weight") * gain[:, None, None]
        weights[f"{layer}.bias"] = w(f"{layer}.batch_norm.bias") - w(f"{layer}.batch_norm.running_mean") * gain
        w.never_read(f"{layer}.batch_norm.num_batches_tracked")  # a training counter
    return weights

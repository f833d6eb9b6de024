"""Hugging Face ViT (ViTModel, ViTForImageClassification; keys under ``vit.`` in the task model) and DeiT
(DeiTModel, DeiTForImageClassification; under ``deit.``: ViT's layout with a distillation token after the class
token) as an encoder reading `patches`: the patch embedding's Conv2d weight (width, C, P, P) becomes the
(C·P·P, width) matrix of one MatMul over the flattened patches, the class (and distillation) token and the
position embeddings (one row per token: max_length is the patches plus the tokens in front) as they are;
pre-norm layers (layernorm_before / layernorm_after), the final layernorm. The pooler (dense and pooler_act over
the class token) is the `pooler` head; the image classifier (a linear map of the final-normed class token) is
`classifier` with `pooling: first, dense: false`.

The import takes images of the configured size. For another size (Hugging Face's interpolate_pos_encoding), edit
the imported spec: the new `image_size`, `position_grid` the configured grid (image_size / patch_size),
`positional: none`, and the same weights file (tests/test_parity_vit.py does). A mask token
(ViTForMaskedImageModeling), pooler_output_size other than hidden_size and DeiT's classifier with a teacher (the
mean of two heads' logits) are refused by name."""
from __future__ import annotations

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, ffn_section, linear_weights, norm_weights, output_and_ffn
from .heads import head_activation, labels


def square(config: dict, key: str) -> int:
    """image_size or patch_size: an int, or a [height, width] pair with height = width."""
    value = config[key]
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise TfcError(f"ViT with {key}={value!r} (not square) is not supported yet")
        value = value[0]
    return int(value)


def vit(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    if not config.get("qkv_bias", True):  # model.bias covers the FFN's biases too
        raise TfcError("ViT with qkv_bias=false is not supported yet")
    if w.has("embeddings.mask_token"):
        raise TfcError("ViT with a mask token (ViTForMaskedImageModeling, use_mask_token) is not supported yet")
    if w.has("cls_classifier.weight"):
        raise TfcError("DeiTForImageClassificationWithTeacher (the mean of the class and distillation tokens' "
                       "classifiers) is not supported yet; DeiTForImageClassification is")
    distilled = w.has("embeddings.distillation_token")
    image, patch, channels = square(config, "image_size"), square(config, "patch_size"), config["num_channels"]
    if image % patch:
        raise TfcError(f"ViT with image_size {image} not a multiple of patch_size {patch}: Hugging Face's "
                       "convolution drops the remainder, which the `patches` input refuses")
    width, eps, layers = config["hidden_size"], config["layer_norm_eps"], config["num_hidden_layers"]
    spec = {
        "model": {"width": width, "heads": config["num_attention_heads"], "ffn_width": config["intermediate_size"],
                  "vocab_size": 1, "max_length": (image // patch) ** 2 + 1 + distilled},  # no ids: one unread
        "input": {"kind": "patches", "image_size": image, "patch_size": patch, "channels": channels,
                  **({"distillation_token": True} if distilled else {})},
        "positional": "learned",
        "block": {"placement": "pre", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": ffn_section(config, activation_kind(config["hidden_act"]))},
        "encoder": {"layers": layers, "final_norm": True},
        "head": {"kind": "none"}}
    conv = w("embeddings.patch_embeddings.projection.weight")  # (width, C, P, P), as the flattened patches read it
    weights = {"embeddings.patches.weight": conv.reshape(len(conv), -1).T,
               "embeddings.patches.bias": w("embeddings.patch_embeddings.projection.bias"),
               "embeddings.class_token": w("embeddings.cls_token"),
               "embeddings.positions.weight": w("embeddings.position_embeddings")[0],
               **norm_weights(w, "encoder.final_norm", "layernorm")}
    if distilled:
        weights["embeddings.distillation_token"] = w("embeddings.distillation_token")
    for i in range(layers):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            weights.update(linear_weights(w, f"{ours}.attention.{name}", f"{theirs}.attention.attention.{name}", True))
        weights.update(output_and_ffn(w, ours, True, f"{theirs}.attention.output.dense", f"{theirs}.layernorm_before",
                                       f"{theirs}.intermediate.dense", f"{theirs}.output.dense",
                                       f"{theirs}.layernorm_after"))
    if w.has("pooler.dense.weight"):  # ViTModel: dense and pooler_act over the class token
        if config.get("pooler_output_size", width) != width:
            raise TfcError(f"ViT with pooler_output_size {config['pooler_output_size']} != hidden_size {width} "
                           "is not supported yet")
        spec["head"] = {"kind": "pooler", "pooling": "first", "activation": head_activation(config.get("pooler_act",
                                                                                                       "tanh"))}
        weights.update(linear_weights(w, "pooler.dense", "pooler.dense", True))
    if w.has("classifier.weight"):  # ViTForImageClassification: the final-normed class token, one linear map
        head = linear_weights(w, "classifier", "classifier", True)
        spec["head"] = {"kind": "classifier", "labels": labels(head), "pooling": "first", "dense": False}
        weights.update(head)
    return spec, weights

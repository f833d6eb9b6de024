"""BigBird (`big_bird`): BERT's layout and tensor names, with Hugging Face's block-sparse attention as the
`bigbird` kind in the layout Hugging Face runs in eval mode (see the package's docstring)."""
from __future__ import annotations

from ...errors import TfcError
from .checkpoint import Checkpoint, linear_weights
from .encoders import bert


def big_bird(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """attention_type original_full is BERT's attention; block_sparse is ITC (the first and the input's
    last block global, a window of three blocks) with num_random_blocks slots that gather block 0, as
    `_bigbird_block_rand_mask_with_head` leaves them when not training (`layout: first_block`)."""
    if config.get("rescale_embeddings"):
        raise TfcError("BigBird with rescale_embeddings=true (token embeddings times √hidden_size) is not "
                       "supported yet")
    if not config.get("use_bias", True):
        raise TfcError("BigBird with use_bias=false (query, key and value without biases) is not supported yet")
    spec, weights = bert(config, w)
    if w.has("pooler.weight") and spec["head"] == {"kind": "none"}:  # BERT's pooler, named `pooler` alone
        spec["head"] = {"kind": "pooler"}
        weights.update(linear_weights(w, "pooler.dense", "pooler", True))
    if config.get("attention_type", "block_sparse") == "block_sparse":
        spec["block"]["attention"] = {
            "kind": "bigbird", "block": config["block_size"], "window_blocks": 3, "global_blocks": 1,
            "trailing_global_blocks": 1, "random_blocks": config["num_random_blocks"], "layout": "first_block"}
    return spec, weights

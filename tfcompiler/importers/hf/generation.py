"""What generating text needs from a Hugging Face model folder besides the model: the end, begin and
padding token ids for the spec's `generation` section, and the tokenizer files to copy beside the spec.

The ids come from generation_config.json where it sets them (what transformers' ``generate`` reads),
else from config.json; a null or negative id (old Llama configs write ``pad_token_id: -1``) means none.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import TfcError
from ...model_folder import TOKENIZER_FILES

IDS = ("eos_token_id", "bos_token_id", "pad_token_id")


def generation_section(model_dir: Path, config: dict) -> dict:
    """The spec's `generation` section ({} when the checkpoint names no token), ids in IDS order."""
    path = model_dir / "generation_config.json"
    try:
        generation = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as e:
        raise TfcError(f"{path}: cannot read the generation config: {e}") from None
    section = {}
    for key in IDS:
        value = generation.get(key) if generation.get(key) is not None else config.get(key)
        if isinstance(value, list):
            value = [token for token in value if _is_token(token)] or None
        elif not _is_token(value):
            value = None
        if value is not None:
            section[key] = value
    if isinstance(generation.get("max_new_tokens"), int) and generation["max_new_tokens"] > 0:
        section["max_new_tokens"] = generation["max_new_tokens"]
    return section


def _is_token(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def tokenizer_files(model_dir: Path) -> list[Path]:
    """The checkpoint's tokenizer files, sorted by name."""
    return sorted(model_dir / name for name in TOKENIZER_FILES if (model_dir / name).is_file())

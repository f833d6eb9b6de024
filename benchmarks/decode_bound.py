"""The bandwidth bound of benchmarks/decode.py: a decoder step at batch B must stream every weight it
multiplies by (not the embedding tables it gathers a row from) plus each row's KV cache, so the
machine's memory bandwidth (measured by machine.memory_bandwidth) caps its tokens/s at bandwidth / bytes per
token."""
from __future__ import annotations


def bytes_per_step(info: dict, batch: int, prompt: int, new: int) -> float:
    """Bytes one decode step reads per token: the streamed weights shared by the batch's rows, plus each
    row's KV cache at its mean length over the decode."""
    mean_length = prompt + new / 2
    return info["streamed_bytes"] / batch + info["kv_bytes_per_position"] * mean_length

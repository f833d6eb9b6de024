"""Memories carried between segments, for ``Reference``: Transformer-XL's segment memory (Dai et al.
2019) with the Compressive Transformer's compressed memory (Rae et al. 2019), and Memformer's memory
slots and their writer (Wu et al. 2022)."""
from __future__ import annotations

import math

import numpy as np

from .formulas import LAYER_NORM, attention, gru_cell


class Memory:
    def gru(self, name, x, h):
        """torch.nn.GRUCell(x, h) with the weights under `name`."""
        return gru_cell({k: self.w[f"{name}.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}, x, h)

    def memory_read(self, stack, i):
        """Whose memory layer i reads: its own, or with enhanced recurrence the layer above's (the top
        layer the bottom's, as the Compressive Transformer package rolls them)."""
        return (i + 1) % stack.layers if stack.recurrence == "enhanced" else i

    def remember(self, stack, i, past, x, name):
        """Layer i's keys beyond its input: [compressed; pending; memory] from the feeds (those of the
        layer it reads); records the present memories — the last `memory` states of [memory; x], and
        the evicted states (after the pending ones) compressed window by window, a partial last window
        pending."""
        combined = np.concatenate([past, x], axis=1)
        self.present[f"present_memories.{i}"] = combined[:, -stack.memory:]
        if stack.compressed_memory is None:
            return past
        read = self.memory_read(stack, i)
        compressed, pending = (self.feeds[f"past_{kind}_memories.{read}"] for kind in ("compressed", "pending"))
        evicted = np.concatenate([pending, combined[:, :max(0, combined.shape[1] - stack.memory)]], axis=1)
        whole = evicted.shape[1] - evicted.shape[1] % stack.compressed_memory.rate
        self.present[f"present_compressed_memories.{i}"] = np.concatenate(
            [compressed, self.compress(evicted[:, :whole], stack.compressed_memory, name)],
            axis=1)[:, -stack.compressed_memory.length:]
        self.present[f"present_pending_memories.{i}"] = evicted[:, whole:]
        return np.concatenate([compressed, pending, past], axis=1)

    def compress(self, evicted, options, name):
        """The Compressive Transformer's f_c over windows of `rate` evicted states: their mean, or a 1-D
        convolution with kernel = stride = rate."""
        rate = options.rate
        windows = evicted.reshape(evicted.shape[0], evicted.shape[1] // rate, rate, evicted.shape[2])
        if options.function == "mean":
            return windows.mean(2)
        return self.linear(windows.reshape(evicted.shape[0], -1, rate * evicted.shape[2]), name, bias=True)

    def write_slots(self, name, slots, h, key_bias, forgetting):
        """Memformer's writer: slot i attends [m_i; H] (its own slot and the real tokens), then either
        torch.nn.GRUCell(input = that, state = m_i) and a pre-norm GELU feed-forward sublayer (gru), or
        LayerNorm(that + a learned bias of slot i) (normalize: biased memory normalisation)."""
        m = self.spec.model
        out = np.zeros_like(slots)
        for i in range(slots.shape[1]):
            keys = np.concatenate([slots[:, i:i + 1], h], axis=1)
            bias = None if key_bias is None else np.concatenate([np.zeros((len(h), 1)), key_bias], axis=1)
            q = self.linear(slots[:, i:i + 1], f"{name}.attention.query").reshape(len(h), 1, m.heads, m.dh)
            k = self.linear(keys, f"{name}.attention.key").reshape(len(h), -1, m.heads, m.dh)
            v = self.linear(keys, f"{name}.attention.value").reshape(len(h), -1, m.heads, m.dh)
            context, _ = attention(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3),
                                   1 / math.sqrt(m.dh), bias)
            out[:, i] = self.linear(context.transpose(0, 2, 1, 3).reshape(len(h), -1), f"{name}.attention.output")
        if forgetting == "normalize":
            return self.norm(out + self.w[f"{name}.slot_bias"], LAYER_NORM, f"{name}.norm")
        kept = self.gru(f"{name}.gru", out, slots)
        return kept + self.ffn(self.norm(kept, LAYER_NORM, f"{name}.ffn_norm"), "gelu", f"{name}.ffn")

"""Length-changing stacks, for ``Reference``: the Funnel Transformer (Dai et al. 2020) pools a
layer's queries, the Hourglass (Nawrot et al. 2021) the sequence itself (mean, or the window's
states concatenated and projected; Swin's patch merging on a raster grid), and an upsampling layer
brings the length back. Hourglass's attention resampling: each pooled state attends its window, each
upsampled state the short state it came from (a block of its own weights)."""
from __future__ import annotations

import types

import numpy as np

from .distil import distil
from .formulas import LAYER_NORM, NEG, attention

# the stack of a funnel-positions model that never pools
UNPOOLED = types.SimpleNamespace(shorten_at=(), upsample_at=None, stride=2, separate_cls=False, attention=False,
                                 last_window="short")


class Resampled:
    def resampled(self, name, stack, blocks, x, mask, token_types, state):
        """Funnel Transformer (Dai et al. 2020): a pooling layer's queries are the mean of each window
        of its input, its keys the input; a window's mask is real only if all of it is, its position
        and segment those of its first token. Hourglass (Nawrot et al. 2021): the sequence itself is
        pooled (mean, or the window's states concatenated and projected), in a decoder after shifting
        it right by stride - 1; a window is real if any of it is. The upsampling layer spreads each
        state over its window (repeated, or projected) and adds the states from before the first pooling."""
        resample = stack.resample or UNPOOLED
        positions = np.arange(x.shape[1])
        types = np.zeros(x.shape[:2], np.int64) if token_types is None else token_types
        mask = np.ones(x.shape[:2]) if mask is None else mask
        state["funnel"] = {"separate_cls": resample.separate_cls}
        full, k, level = None, resample.stride, 0

        def pool(a, reduce):
            return np.stack([reduce(w) for w in self.windows(a, resample)], axis=1)

        for i in range(stack.layers):
            keys = None
            if i in resample.shorten_at:
                full = full or (x, mask, positions, types)
                if resample.last_window == "zero_filled":  # zero states (padding) to whole windows, then the shift
                    fill = -x.shape[1] % k
                    x = np.concatenate([x, np.zeros((x.shape[0], fill, x.shape[2]))], axis=1)
                    mask = np.concatenate([mask, np.zeros((mask.shape[0], fill))], axis=1)
                    positions = np.arange(x.shape[1])
                    types = np.concatenate([types, np.zeros((types.shape[0], fill), types.dtype)], axis=1)
                if name == "decoder":  # window n holds tokens n·k - k + 1 .. n·k
                    x = np.concatenate([np.zeros_like(x[:, :k - 1]), x[:, :x.shape[1] - k + 1]], axis=1)
                    mask = np.concatenate([np.zeros_like(mask[:, :k - 1]), mask[:, :mask.shape[1] - k + 1]], axis=1)
                key_bias = np.where(mask != 0, 0.0, NEG)
                if resample.pooling == "distil":  # Informer: a circular conv, ELU, max-pooling by 2
                    p = f"{name}.layers.{i}.shorten.conv"
                    x, mask = distil(x, self.w[f"{p}.weight"], self.w[f"{p}.bias"]), mask[:, ::2]
                    positions, types, level = np.arange(x.shape[1]), types[:, ::2], level + 1
                    state["funnel"].update(queries=(positions, types), keys=(positions, types))
                    x = self.layer(name, stack, i, x, np.where(mask != 0, 0.0, NEG), state)
                    continue
                if resample.grid_width:  # Swin: each k×k square of the raster grid, column by column
                    squares, mask = self.grid_squares(x, resample.grid_width // k ** level, k), \
                        self.grid_squares(mask[..., None], resample.grid_width // k ** level, k)[..., 0].max(2)
                    if resample.pooling == "mean":
                        pooled = squares.mean(2)
                    else:
                        joined = squares.reshape(squares.shape[0], squares.shape[1], -1)
                        if resample.pooling == "merge":
                            joined = self.norm(joined, LAYER_NORM, f"{name}.layers.{i}.shorten.norm")
                        pooled = self.linear(joined, f"{name}.layers.{i}.shorten", bias=resample.pooling == "linear")
                    positions = np.arange(pooled.shape[1])
                    x, types, level = pooled, types[:, :pooled.shape[1]], level + 1
                    state["funnel"].update(queries=(positions, types), keys=(positions, types))
                    x = self.layer(name, stack, i, x, np.where(mask != 0, 0.0, NEG), state)
                    continue
                if resample.pooling == "mean":
                    pooled = pool(x, lambda w: w.mean(1))
                else:
                    padded = np.concatenate([x, np.zeros((x.shape[0], -x.shape[1] % k, x.shape[2]))], axis=1)
                    pooled = self.linear(padded.reshape(x.shape[0], -1, k * x.shape[2]), f"{name}.layers.{i}.shorten",
                                         bias=True)
                if resample.attention:
                    pooled = self.shorten_by_attention(f"{name}.layers.{i}.shorten", blocks[i], pooled, x, mask, k)
                if resample.queries_only:
                    keys = x
                mask = pool(mask, lambda w: w.min(1) if resample.queries_only else w.max(1))
                pooled_positions = pool(positions[None], lambda w: w[:, 0])[0]
                pooled_types = pool(types, lambda w: w[:, 0])
                state["funnel"].update(queries=(pooled_positions, pooled_types),
                                       keys=((positions, types) if keys is not None
                                             else (pooled_positions, pooled_types)))
                x, positions, types, level = pooled, pooled_positions, pooled_types, level + 1
                if keys is not None:
                    x = self.layer(name, stack, i, x, key_bias, state, keys=keys)
                    continue
            if i == resample.upsample_at:  # position n takes the state whose window held token n
                c, factor = int(resample.separate_cls), k ** level
                if resample.upsampling == "repeat":
                    up = np.zeros_like(full[0])
                    up[:, :c] = x[:, :c]
                    for n in range(c, up.shape[1]):
                        if c + (n - c) // factor < x.shape[1]:
                            up[:, n] = x[:, c + (n - c) // factor]
                else:
                    spread = self.linear(x, f"{name}.layers.{i}.upsample", bias=True)
                    up = spread.reshape(x.shape[0], -1, x.shape[2])[:, :full[0].shape[1]]
                x, short = up + full[0], x
                if resample.attention:  # each full-length state attends the one short state of its window
                    windows = self.windows_of(x, factor)
                    out = self.window_block(f"{name}.layers.{i}.upsample", blocks[i], windows,
                                            short.reshape(-1, 1, short.shape[2]), None)
                    x = out.reshape(x.shape[0], -1, x.shape[2])[:, :x.shape[1]]
                mask, positions, types, level = full[1], full[2], full[3], 0
            state["funnel"].update(queries=(positions, types), keys=(positions, types))
            x = self.layer(name, stack, i, x, np.where(mask != 0, 0.0, NEG), state)
        return self.final_norm(name, stack, blocks, x), np.where(mask != 0, 0.0, NEG)

    def shorten_by_attention(self, p, block, pooled, x, mask, k):
        """Hourglass's attention shortening: pooled state n attends the k states of window n of x."""
        real = self.windows_of(mask[..., None], k)[..., 0] != 0
        key_bias = np.where(real | ~real.any(1, keepdims=True), 0.0, NEG)  # a window of padding sees all of it
        out = self.window_block(p, block, pooled.reshape(-1, 1, pooled.shape[2]), self.windows_of(x, k), key_bias)
        return out.reshape(pooled.shape)

    def window_block(self, p, block, q, kv, key_bias):
        """q (N, Q, D) attends kv (N, K, D) (multi-head, no positions, keys as given), then the FFN."""
        def attend(h):
            out, _ = attention(self.heads(h, f"{p}.attention.query"), self.heads(kv, f"{p}.attention.key"),
                               self.heads(kv, f"{p}.attention.value"), 1 / np.sqrt(self.spec.model.dh), key_bias)
            return self.merge_heads(out, f"{p}.attention.output")

        x = self.sublayer(q, block, f"{p}.attention", attend)
        if block.ffn.enabled:
            x = self.sublayer(x, block, f"{p}.ffn", lambda h: self.ffn(h, block.ffn.activation, f"{p}.ffn"))
        return x

    @staticmethod
    def windows_of(x, k):
        """(B, S, D) -> (B·ceil(S/k), k, D): windows of k along axis 1, the last one zero-filled."""
        padded = np.concatenate([x, np.zeros((x.shape[0], -x.shape[1] % k, x.shape[2]))], axis=1)
        return padded.reshape(-1, k, x.shape[2])

    @staticmethod
    def grid_squares(x, width, k):
        """(B, S, D) raster grid `width` wide -> (B, squares, k·k, D), missing cells zero."""
        rows = -(-x.shape[1] // width)
        rows += -rows % k
        grid = np.zeros((x.shape[0], rows * width, x.shape[2]))
        grid[:, :x.shape[1]] = x
        grid = grid.reshape(x.shape[0], rows, width, x.shape[2])
        out = [np.stack([grid[:, a * k + r, b * k + c] for c in range(k) for r in range(k)], axis=1)
               for a in range(rows // k) for b in range(width // k)]
        return np.stack(out, axis=1)

    @staticmethod
    def windows(x, resample):
        """Windows of `stride` along axis 1; with separate_cls over [x0, x0, x1, ...] ([CLS] alone),
        truncate dropping the last entry."""
        if resample.separate_cls:
            x = np.concatenate([x[:, :1], x[:, :-1] if resample.truncate else x], axis=1)
        return [x[:, i:i + resample.stride] for i in range(0, x.shape[1], resample.stride)]


"""A stack: its input layer and positions (the embeddings), its blocks, its final norm."""
from __future__ import annotations

from ..language.kinds import INPUTS, POSITIONS
from ..language.model import Norm
from .block import build_block
from .memory_slots import read_slots, write_slots
from .norm import build_norm
from .resample_attention import shorten_by_attention, upsample_by_attention
from .segment_memory import segment_memory


def embeddings_scope(spec, stack_name: str) -> str:
    """`embeddings` for one-stack models, `encoder.embeddings` / `decoder.embeddings` otherwise."""
    return "embeddings" if len(spec.stacks()) == 1 else f"{stack_name}.embeddings"


def build_embeddings(ctx, spec, stack_name: str, blocks):
    """The input layer and the positions of the embeddings: (StackInput, hidden (B, S, D),
    positions (1, S), or (B, S) read from `position_ids` with a cache, or None when no scheme reads them)."""
    with ctx.at(embeddings_scope(spec, stack_name)):
        options = spec.input_of(stack_name)
        start = INPUTS.builder(options)(ctx, options, spec, stack_name)
        positions = stack_positions(spec, blocks, lambda: ctx.cache.position_ids(ctx) if ctx.cache
                                    else ctx.op("positions", start.ids, axis=1))
        hidden = start.hidden
        if POSITIONS.builder(spec.positional).embed is not None:
            hidden = POSITIONS.builder(spec.positional).embed(ctx, spec.positional, spec, hidden, positions, start.mask)
        if start.after_positions is not None:
            hidden = start.after_positions(hidden)
        if spec.embedding.norm:
            hidden = build_norm(ctx, hidden, Norm(kind=spec.embedding.norm, epsilon=spec.embedding.norm_epsilon),
                                "norm")
    return start, hidden, positions


def stack_positions(spec, blocks, make):
    """`make()` when the model's scheme or a block's own scheme reads positions, else None."""
    scheme = POSITIONS.builder(spec.positional)
    used = scheme.embed or scheme.rotate or scheme.attend or any(b.positional is not None for b in blocks)
    return make() if used else None


def build_layer(ctx, spec, stack_name: str, stack, layer: int, hidden, mask, positions, state: dict, encoder=None,
                **pooling):
    """Block `layer` of a stack (with its segment memory when the stack has one); `pooling`: the
    block's unpooled / levels arguments in a length-changing stack."""
    block = getattr(spec, f"{stack_name}_blocks")[layer]
    with ctx.at(stack_name, "layers", layer):
        memory = segment_memory(ctx, spec, stack, layer, written(ctx, stack, block, hidden)) if stack.memory else None
        cache = ctx.cache.layer(layer) if ctx.cache else None
        return build_block(ctx, block, spec, hidden, mask, stack_name == "decoder", positions, state, encoder, memory,
                           cache=cache, **pooling)


def written(ctx, stack, block, hidden):
    """What a layer writes into its memory: its input, or that input after its attention norm."""
    if stack.memory_states == "normalized":
        return build_norm(ctx, hidden, block.norm, "attention_norm")
    return hidden


def build_final_norm(ctx, stack_name: str, stack, blocks, hidden):
    """The norm after the last block: by default where blocks are pre-norm."""
    final_norm = stack.final_norm
    if final_norm is None:
        final_norm = bool(blocks) and blocks[-1].placement in ("pre", "reversible")
    if not final_norm:
        return hidden
    with ctx.at(stack_name):
        return build_norm(ctx, hidden, blocks[-1].norm if blocks else Norm(), "final_norm")


def build_stack(ctx, spec, stack_name: str, stack, blocks, encoder=None):
    """Returns (hidden (B,S,D), padding mask (B,S))."""
    start, hidden, positions = build_embeddings(ctx, spec, stack_name, blocks)
    state = {"stack": stack_name, "resample": stack.resample}
    if start.pair_terms:  # the input's terms over query-key pairs, for every self-attention
        state["pair_terms"] = start.pair_terms
    if stack.resample is not None:
        hidden, mask = resampled_layers(ctx, spec, stack_name, stack, hidden, start.mask, positions, state)
    else:
        mask = start.mask
        slots = read_slots(ctx, spec, stack_name, stack.memory_slots.count, hidden) if stack.memory_slots else None
        reads = (slots, None) if slots is not None else encoder  # Memformer: every layer reads the slots
        reversible = bool(blocks) and blocks[0].placement == "reversible"
        if reversible:  # two streams, both the embeddings
            hidden = (hidden, hidden)
        for i in range(len(blocks)):
            hidden = build_layer(ctx, spec, stack_name, stack, i, hidden, mask, positions, state, reads)
        if reversible:
            with ctx.at(stack_name):
                hidden = ctx.op("concat", *hidden, axis=-1, label="Streams")
    hidden = build_final_norm(ctx, stack_name, stack, blocks, hidden)
    if stack.memory_slots:
        write_slots(ctx, spec, stack_name, stack.memory_slots, slots, hidden, mask)
    return hidden, mask


def resampled_layers(ctx, spec, stack_name: str, stack, hidden, mask, positions, state):
    """Funnel Transformer (Dai et al. 2020) with `queries_only`: at each `shorten_at` layer the queries
    are the input pooled by the stride (keys and values: the input itself). Hourglass (Nawrot et al.
    2021) otherwise: the input is pooled before the layer, in a decoder after a causal shift right by
    stride - 1 (after filling the last window with zero states, with `last_window: zero_filled`). The
    padding mask is pooled too (Funnel: real where the whole window is; Hourglass:
    where any of it is). At `upsample_at` the short states are spread back to full length and the
    states from before the first pooling are added. With `attention`, both are refined by attention
    within their windows (tfcompiler.builders.resample_attention). Returns (hidden, its mask)."""
    resample, blocks = stack.resample, getattr(spec, f"{stack_name}_blocks")
    windows = dict(stride=resample.stride, separate_cls=resample.separate_cls, truncate=resample.truncate)
    causal = stack_name == "decoder"
    level, full = 0, None
    for i in range(stack.layers):
        if i in resample.shorten_at:
            with ctx.at(stack_name, "layers", i, "shorten"):
                full = full or (hidden, mask, positions)
                if resample.last_window == "zero_filled":
                    hidden = ctx.op("fill_windows", hidden, size=resample.stride, label="WholeWindows")
                    mask = ctx.op("fill_windows", mask, size=resample.stride) if mask is not None else None
                if causal:
                    hidden = ctx.op("shift_right", hidden, count=resample.stride - 1, label="CausalShift")
                    mask = ctx.op("shift_right", mask, count=resample.stride - 1) if mask is not None else None
                pooled = pool_windows(ctx, spec, hidden, resample, windows, level)
                if resample.attention:
                    pooled = shorten_by_attention(ctx, spec, blocks[i], pooled, hidden, mask, resample.stride)
                pooled_mask = pool_mask(ctx, mask, resample, windows, level) if mask is not None else None
                pooled_positions = ctx.op("positions", pooled, axis=1) if positions is not None else None
            if resample.queries_only:  # the pooled queries attend the unpooled input (keys one level finer)
                hidden = build_layer(ctx, spec, stack_name, stack, i, pooled, mask, pooled_positions, state,
                                     unpooled=hidden, levels=(level + 1, level))
                mask, positions, level = pooled_mask, pooled_positions, level + 1
                continue
            hidden, mask, positions, level = pooled, pooled_mask, pooled_positions, level + 1
        if i == resample.upsample_at:
            with ctx.at(stack_name, "layers", i, "upsample"):
                upsampled = upsample_windows(ctx, spec, hidden, full[0], resample, resample.stride ** level)
                short, hidden = hidden, ctx.op("add", upsampled, full[0], label="FullLengthResidual")
                if resample.attention:
                    hidden = upsample_by_attention(ctx, spec, blocks[i], hidden, short, resample.stride ** level)
            mask, positions, level = full[1], full[2], 0
        hidden = build_layer(ctx, spec, stack_name, stack, i, hidden, mask, positions, state, levels=(level, level))
    return hidden, mask


def fold(ctx, x, resample, level: int):
    """(B, S[, D]) -> (B, S', window, [D]): the windows of a sequence, or the squares of a grid."""
    if resample.grid_width:
        return ctx.op("fold_grid", x, width=resample.grid_width // resample.stride ** level, size=resample.stride)
    return ctx.op("fold_windows", x, size=resample.stride)


def pool_windows(ctx, spec, hidden, resample, windows, level: int):
    """(B, S, D) -> (B, S', D): each window's mean, or its states concatenated and projected (after a
    LayerNorm, without a bias, for merge)."""
    if resample.pooling == "mean" and not resample.grid_width:
        return ctx.op("shorten", hidden, mode="mean", label="Pool", **windows)
    folded = fold(ctx, hidden, resample, level)  # (B, S', window, D), zero-filled
    if resample.pooling == "mean":
        return ctx.op("reduce_mean", folded, axes=(2,), keepdims=False, label="Pool")
    width, size = spec.model.width, ctx.type_of(folded).shape[2]
    joined = ctx.op("reshape", folded, shape=(0, 0, size * width))
    if resample.pooling == "merge":
        return ctx.linear(build_norm(ctx, joined, Norm(), "norm"), width, "", bias=False)
    return ctx.linear(joined, width, "")


def pool_mask(ctx, mask, resample, windows, level: int):
    """Funnel: a window is real where all of it is; Hourglass and grids: where any of it is."""
    if resample.grid_width:
        return ctx.op("reduce_max", fold(ctx, mask, resample, level), axes=(2,), keepdims=False, label="PoolMask")
    return ctx.op("shorten", mask, mode="min" if resample.queries_only else "max", label="PoolMask", **windows)


def upsample_windows(ctx, spec, hidden, like, resample, factor: int):
    """(B, S', D) -> like's length: each state repeated `factor` times, or projected to `factor` states."""
    if resample.upsampling == "repeat":
        return ctx.op("upsample", hidden, like, stride=factor, separate_cls=resample.separate_cls, label="Repeat")
    width = spec.model.width
    spread = ctx.op("reshape", ctx.linear(hidden, factor * width, ""), shape=(0, 0, factor, width))
    return ctx.op("unfold_windows", spread, like)

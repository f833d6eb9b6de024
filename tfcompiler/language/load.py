"""Load a spec file: YAML with locations -> typed :class:`Spec`, per-layer blocks merged, and the
cross-field rules checked. Every problem is collected and raised together as one SpecError."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import yaml

from ..errors import Problem, SpecError
from .model import STACKS, Block, Spec
from .schema import Reader


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError([Problem(str(path), 1, 1, "", f"cannot read the spec: {e.strerror}")]) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, file: str = "<spec>") -> Spec:
    """Parse and validate spec text; ``file`` names it in messages."""
    from .. import builders  # noqa: F401  (the build modules register the spec's kinds)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(file, line, col, "", f"malformed YAML: {e.problem or e}")]) from None
    if root is None:
        raise SpecError([Problem(file, 1, 1, "", "the spec is empty")])
    reader = Reader(file)
    spec = reader.section(Spec, root, "")
    if spec is not None:
        blocks = {name: _layer_blocks(reader, spec, name, stack) for name, stack, _ in spec.stacks()}
        spec = dataclasses.replace(spec, **{f"{name}_blocks": blocks.get(name, ()) for name in STACKS}, source=file,
                                   sha256=hashlib.sha256(text.encode()).hexdigest())
        if not reader.problems:
            _check_rules(reader, spec, root)
    if reader.problems:
        raise SpecError(_unique(reader.problems))
    return spec


def _layer_blocks(reader: Reader, spec: Spec, name: str, stack) -> tuple[Block, ...]:
    """One Block per layer: top-level block, then the stack's block, then matching overrides.
    Each partial block is checked on its own first, so a problem is reported at the path where it
    was written (`block.ffn`, `encoder.overrides[0].block.ffn`), not at the first layer it reaches."""
    reader.section(Block, spec.block, "block")
    reader.section(Block, stack.block, f"{name}.block")
    overrides = []
    for i, override in enumerate(stack.overrides):
        if override is None:
            continue
        path = f"{name}.overrides[{i}]"
        reader.section(Block, override.block, f"{path}.block")
        span = override.layers
        if len(span) != 2 or not all(isinstance(x, int) for x in span) or \
                not 0 <= span[0] <= span[1] < stack.layers:
            reader.problem(reader.node_of(span), f"{path}.layers",
                           f"expected [first, last] with 0 <= first <= last < {stack.layers}, got {span}")
            continue
        overrides.append(override)
    base = merge_nodes(spec.block, stack.block)
    blocks = []
    for layer in range(stack.layers):
        node = base
        for override in overrides:
            if override.layers[0] <= layer <= override.layers[1]:
                node = merge_nodes(node, override.block)
        blocks.append(reader.section(Block, node, f"{name}.layers[{layer}].block"))
    return tuple(blocks)


def merge_nodes(base: yaml.Node | None, over: yaml.Node | None) -> yaml.Node | None:
    """Deep-merge two YAML mappings, keeping each value's location. A changed `kind` replaces the
    whole mapping (options of one kind mean nothing to another)."""
    if base is None or over is None:
        return over if base is None else base
    if not (isinstance(base, yaml.MappingNode) and isinstance(over, yaml.MappingNode)):
        return over
    base_items = {k.value: (k, v) for k, v in base.value}
    over_items = {k.value: (k, v) for k, v in over.value}
    base_kind, over_kind = base_items.get("kind"), over_items.get("kind")
    if over_kind and base_kind and over_kind[1].value != base_kind[1].value:
        return over
    merged = dict(base_items)
    for key, (k, v) in over_items.items():
        merged[key] = (k, merge_nodes(base_items[key][1], v) if key in base_items else v)
    return yaml.MappingNode(base.tag, list(merged.values()), start_mark=over.start_mark)


def _check_rules(reader: Reader, spec: Spec, root: yaml.Node) -> None:
    """Rules that tie fields together, reported at the field that breaks them."""
    at = _locator(root)
    m = spec.model
    if spec.model.head_width is None and m.width % m.heads:
        reader.problem(at("model.heads"), "model.heads",
                       f"width {m.width} is not divisible by {m.heads} heads (set head_width to decouple)")
    if m.heads % m.kv:
        reader.problem(at("model.kv_heads"), "model.kv_heads",
                       f"{m.heads} heads are not divisible by {m.kv} key/value heads")
    wanted = {"encoder": ("encoder",), "decoder": ("decoder",),
              "encoder-decoder": ("encoder", "decoder"), "hierarchical": ("encoder", "document")}[spec.topology]
    for stack in STACKS:
        present = getattr(spec, stack) is not None
        if present != (stack in wanted):
            reader.problem(at(stack) if present else at("topology"), stack,
                           f"topology '{spec.topology}' "
                           f"{'has no' if present else 'needs a' + 'n' * (stack[0] in 'aeiou')} "
                           f"`{stack}` section")
    if spec.head.kind in ("pooler", "classifier") and not spec.bidirectional:
        reader.problem(at("head.kind"), "head.kind", f"'{spec.head.kind}' needs topology 'encoder' or 'hierarchical'")
    if spec.head.kind == "lm" and spec.topology == "hierarchical":
        reader.problem(at("head.kind"), "head.kind", "a hierarchical model outputs sentence vectors, not tokens: "
                       "use none, pooler, classifier or set_pool")
    for name, stack, _ in spec.stacks():
        if stack.compressed_memory is not None and not stack.memory:
            reader.problem(at(f"{name}.compressed_memory"), f"{name}.compressed_memory",
                           "a compressed memory holds what leaves the segment memory: set `memory` too")
        if stack.memory_slots and (name != "encoder" or spec.topology not in ("encoder", "encoder-decoder")):
            reader.problem(at(f"{name}.memory_slots"), f"{name}.memory_slots",
                           "memory slots are read and written by an encoder: they need the encoder of topology "
                           "'encoder' or 'encoder-decoder'")
        for problem in resample_problems(stack, name, spec):
            reader.problem(at(f"{name}.resample"), f"{name}.resample", problem)
    document = spec.document
    if document is not None and document.interleaved and document.layers != spec.encoder.layers:
        reader.problem(at("document.layers"), "document.layers",
                       f"an interleaved document stack runs beside the encoder layer by layer: it needs "
                       f"{spec.encoder.layers} layers, got {document.layers}")
    for name, stack, blocks in spec.stacks():
        if stack.memory and (name != "decoder" or spec.topology != "decoder"):
            reader.problem(at(f"{name}.memory"), f"{name}.memory", "segment memory needs topology 'decoder'")
        elif stack.memory:
            from .kinds import POSITIONS

            for i, block in enumerate(blocks):
                scheme = block.positional if block.positional is not None else spec.positional
                kind = type(scheme).KIND
                if POSITIONS.builder(scheme).embed is not None or kind == "rope":
                    reader.problem(at(f"{name}.memory"), f"{name}.memory",
                                   f"layer {i}'s positional '{kind}' numbers positions from each segment's start; "
                                   "segment memory needs a relative scheme (transformer_xl, t5, alibi, shaw, "
                                   "music, deberta) or none")
                    break
    for i, block in enumerate(spec.encoder_blocks or ()):
        if getattr(block.attention, "start", "zeros") == "encoder":
            reader.problem(at("encoder"), f"encoder.layers[{i}].block.attention",
                           "start: encoder is for the decoder's layers (they start from the encoder's states)")
            break
    for i, block in enumerate(spec.decoder_blocks or ()):
        if getattr(block.attention, "bidirectional", False):
            reader.problem(at("decoder"), f"decoder.layers[{i}].block.attention",
                           "a bidirectional layer sees the future: only encoder stacks can have one")
            break
    if spec.topology == "encoder-decoder":
        for i, block in enumerate(spec.decoder_blocks):
            cross = block.cross_attention if block.cross_attention is not None else block.attention
            if getattr(cross, "self_only", False):
                reader.problem(at("decoder"), f"decoder.layers[{i}].block.cross_attention",
                               f"'{type(cross).KIND}' cannot attend an encoder: set block.cross_attention "
                               "(e.g. {kind: multi_head})")
                break
    for name, stack, blocks in spec.stacks():
        for problem in reversible_problems(spec, name, stack, blocks):
            reader.problem(at(name), name, problem)
    kinds = {"input": spec.input, "positional": spec.positional}
    for name, _, blocks in spec.stacks():
        kinds.update({f"{name}.layers[{i}].block.attention": b.attention for i, b in enumerate(blocks)})
        kinds.update({f"{name}.layers[{i}].block.cross_attention": b.cross_attention for i, b in enumerate(blocks)
                      if b.cross_attention is not None})
    for path, options in kinds.items():
        for problem in getattr(options, "problems", lambda _: ())(spec):
            reader.problem(at(path.split(".")[0]), path, problem)


def reversible_problems(spec, name: str, stack, blocks):
    """Reformer's two residual streams run a whole one-stack model: every block, plain self-attention and
    FFN sublayers, and heads that read the streams' concatenation."""
    placements = {block.placement for block in blocks}
    if "reversible" not in placements:
        return
    if placements != {"reversible"}:
        yield "reversible blocks carry two streams from the embeddings to the final norm: every layer of the stack " \
              f"must be reversible, got {sorted(placements)}"
    if spec.topology not in ("encoder", "decoder"):
        yield f"reversible blocks need topology 'encoder' or 'decoder', got '{spec.topology}'"
    if stack.memory or stack.memory_slots or stack.resample is not None:
        yield "reversible blocks take no segment memory, memory slots or resampling"
    if any(not block.ffn.enabled or block.positional is not None for block in blocks):
        yield "reversible blocks need their FFN and the model's positional scheme"
    if spec.head.kind == "lm" and spec.head.tied:
        yield "reversible blocks output twice the model width: the LM head cannot be tied to the embedding " \
              "(set head.tied: false)"


def resample_problems(stack, name: str, spec):
    resample = stack.resample
    if resample is None:
        return
    if spec.topology not in ("encoder", "decoder"):
        yield f"pooling and upsampling need topology 'encoder' or 'decoder', got '{spec.topology}'"
    if name == "decoder" and resample.queries_only:
        yield "a decoder pools the whole sequence after a causal shift: set queries_only: false"
    if resample.separate_cls and (resample.pooling, resample.upsampling) != ("mean", "repeat"):
        yield "separate_cls keeps [CLS] out of mean pooling and repeat upsampling only"
    if stack.memory or stack.memory_slots:
        yield "a stack with a memory cannot change length"
    if resample.grid_width is not None:
        levels = len(resample.shorten_at)
        if resample.grid_width % resample.stride ** levels:
            yield f"grid_width {resample.grid_width} must be divisible by stride^poolings = " \
                  f"{resample.stride ** levels}"
        if resample.queries_only or resample.upsample_at is not None or resample.separate_cls or name != "encoder":
            yield "grid pooling (patch merging) is for encoders, with queries_only: false and no upsampling"
    points = sorted(resample.shorten_at)
    if not points or points != sorted(set(points)) or not 0 < points[0] or points[-1] >= stack.layers:
        yield f"shorten_at needs distinct layers in 1..{stack.layers - 1}, got {resample.shorten_at}"
    elif resample.upsample_at is not None and not points[-1] < resample.upsample_at < stack.layers:
        yield f"upsample_at must come after the last pooling ({points[-1]}) and before {stack.layers}, " \
              f"got {resample.upsample_at}"
    if resample.truncate and not resample.separate_cls:
        yield "truncate only applies with separate_cls (it drops the token [CLS] pushes out of the windows)"


def _locator(root: yaml.Node):
    """path like 'model.heads' -> the YAML node there (or the nearest existing parent)."""
    def at(path: str) -> yaml.Node:
        node = root
        for key in path.split("."):
            if not isinstance(node, yaml.MappingNode):
                break
            found = [v for k, v in node.value if k.value == key]
            if not found:
                break
            node = found[0]
        return node
    return at


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.line, p.column, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return sorted(out, key=lambda p: (p.line, p.column))

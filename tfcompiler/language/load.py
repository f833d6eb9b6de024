"""Load a spec file: YAML with locations -> typed :class:`Spec`, per-layer blocks merged, and the
cross-field rules checked. Every problem is collected and raised together as one SpecError."""
from __future__ import annotations

import dataclasses
import hashlib
from itertools import chain, repeat
from pathlib import Path

import yaml

from ..errors import Problem, SpecError
from . import rules, size
from .model import STACKS, Block, Spec
from .schema import Reader
from .yaml_tree import compose, decode


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError([Problem(str(path), 1, 1, "", f"cannot read the spec: {e.strerror}")]) from None
    return parse_spec(decode(data, str(path)), str(path))


def parse_spec(text: str, file: str = "<spec>") -> Spec:
    """Parse and validate spec text; ``file`` names it in messages. Nothing before the size check is
    linear in a stack's layers, so a spec too big for this machine is refused at once."""
    from .. import builders  # noqa: F401  (the build modules register the spec's kinds)

    root = compose(text, file)
    reader = Reader(file)
    spec = reader.section(Spec, root, "")
    if spec is not None:
        segments = {name: _layer_segments(reader, spec, name, stack) for name, stack, _ in spec.stacks()}
        if not reader.problems:
            _check_size(reader, spec, segments, _locator(root))
        if not reader.problems:
            blocks = {name: tuple(chain.from_iterable(repeat(block, count) for count, block in runs))
                      for name, runs in segments.items()}
            spec = dataclasses.replace(spec, **{f"{name}_blocks": blocks.get(name, ()) for name in STACKS},
                                       source=file, sha256=hashlib.sha256(text.encode()).hexdigest())
            _check_rules(reader, spec, root)
    if reader.problems:
        raise SpecError(_unique(reader.problems))
    return spec


def _layer_segments(reader: Reader, spec: Spec, name: str, stack) -> list[tuple[int, Block]]:
    """The stack's layers as runs (count, Block): top-level block, then the stack's block, then the
    overrides that cover the run; one parsed Block per run of layers that the same overrides cover, so
    a deep stack costs no more than a shallow one. Each partial block is checked on its own first, so a
    problem is reported at the path where it was written (`block.ffn`, `encoder.overrides[0].block.ffn`),
    not at the first layer it reaches."""
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
    cuts = sorted({0, stack.layers} | {o.layers[0] for o in overrides} | {o.layers[1] + 1 for o in overrides})
    runs = []
    for first, end in zip(cuts, cuts[1:]):
        node = base
        for override in overrides:
            if override.layers[0] <= first <= override.layers[1]:
                node = merge_nodes(node, override.block)
        runs.append((end - first, reader.section(Block, node, f"{name}.layers[{first}].block")))
    return runs


def _check_size(reader: Reader, spec: Spec, segments: dict[str, list], at) -> None:
    """Refuse, before any layer is built or weight allocated, a spec whose weights cannot fit in this
    machine's memory (tfcompiler.language.size), at the field that drives the size."""
    found = size.too_big(size.estimate(spec, segments), size.physical_memory())
    if found:
        path, message = found
        reader.problem(at(path), path, message)


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
    """The rules that tie fields together, stated by the sections that own them (rules.py), each
    reported at the YAML node of its path (or the nearest one written: a layer's block at its stack)."""
    at = _locator(root)
    for path, located, message in rules.problems(spec):
        reader.problem(at(located), path, message)


def _locator(root: yaml.Node):
    """path like 'model.heads' -> the YAML node there (or the nearest existing parent:
    `encoder.layers[3].block.attention` -> `encoder`)."""
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

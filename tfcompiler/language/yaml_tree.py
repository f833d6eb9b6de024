"""From a spec file's bytes to its YAML tree with locations, or one located SpecError: text that is not
UTF-8 (a binary or Latin-1 file), characters YAML refuses, malformed YAML, nesting deeper than any spec
needs (the composer and the loader recurse per level, so 10,000 nested lists would be a RecursionError),
a document that is not a mapping of sections, and a tree the loader could not walk: a key that is a list or
a mapping, a scalar its tag cannot read (`!!int 1.5`, `!custom 3`), or aliases that expand it past any
spec's depth or size (a few lines of anchors can stand for billions of values)."""
from __future__ import annotations

import yaml

from ..errors import Problem, SpecError

# A spec nests a handful of levels (block.attention.options, overrides[i].block.ffn); well below
# Python's recursion limit, which the composer reaches at a few hundred levels.
MAX_DEPTH = 64
# Values in the tree with every alias expanded; a large spec has a few hundred.
MAX_VALUES = 100_000

_OPEN = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
_PLAIN = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


def decode(data: bytes, file: str) -> str:
    """The spec's text; bytes that are not UTF-8 are an error at their line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = _line_column(data, e.start)
        raise SpecError([Problem(file, line, column, "", f"the spec is not UTF-8 text: byte 0x{data[e.start]:02x} "
                                 "cannot be decoded (save it as UTF-8; is it a spec file?)")]) from None


def compose(text: str, file: str) -> yaml.MappingNode:
    """The YAML tree of ``text``: a mapping node, each node with its location."""
    try:
        _check_depth(text, file)  # (the scanner is iterative: it finds the place before the composer recurses)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(file, line, col, "", f"malformed YAML: {e.problem or e}")]) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (a NUL, a control character)
        line, column = _line_column(text, e.position)
        code = e.character if isinstance(e.character, int) else ord(e.character)
        raise SpecError([Problem(file, line, column, "", f"character U+{code:04X} is not allowed in YAML "
                                 "(is it a spec file?)")]) from None
    if root is None:
        raise SpecError([Problem(file, 1, 1, "", "the spec is empty")])
    if not isinstance(root, yaml.MappingNode):
        what = "a list" if isinstance(root, yaml.SequenceNode) else f"the scalar {root.value!r}"
        raise SpecError([Problem(file, root.start_mark.line + 1, root.start_mark.column + 1, "",
                                 f"expected a mapping of sections (tfc:, name:, topology:, model:, ...), got {what}")])
    _check_tree(root, file)
    return root


def _check_depth(text: str, file: str) -> None:
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                mark = token.start_mark
                raise SpecError([Problem(file, mark.line + 1, mark.column + 1, "",
                                         f"the YAML nests deeper than {MAX_DEPTH} levels, far beyond any spec")])
        elif isinstance(token, _CLOSE):
            depth -= 1


def _check_tree(root: yaml.Node, file: str) -> None:
    """Walk the tree as the loader will, aliases expanded (iteratively, and stopping at the bounds): keys
    must be scalars (the loader keys dicts by them), scalars must construct, lists and mappings carry no tag (`!!set`,
`!!python/object`), and the expanded tree must
    stay within MAX_DEPTH levels and MAX_VALUES values."""
    constructor = yaml.SafeLoader("")
    problems, stack, count = [], [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_VALUES:
            mark = node.start_mark
            what = (f"nests deeper than {MAX_DEPTH} levels" if depth > MAX_DEPTH else
                    f"holds more than {MAX_VALUES:,} values")
            raise SpecError([Problem(file, mark.line + 1, mark.column + 1, "",
                                     f"the YAML {what} (its aliases expanded), far beyond any spec")])
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN:
            problems.append(_at(file, node, f"tag {_tag(node)} is not allowed: a spec holds plain mappings and lists"))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    problems.append(_at(file, key, f"a key must be a name, got {_kind(key)}"))
                stack += [(key, depth + 1), (value, depth + 1)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(item, depth + 1) for item in node.value]
        else:
            try:
                constructor.construct_object(node)
            except Exception as e:  # noqa: BLE001  (PyYAML's constructors raise what they meet: `!!int` with no
                # digits is an IndexError, `!!int 1.5` a ValueError, an unknown tag a ConstructorError)
                reason = getattr(e, "problem", None) or f"it is no {_tag(node)} value"
                problems.append(_at(file, node, f"cannot read {node.value!r} as {_tag(node)}: {reason}"))
    if problems:
        raise SpecError(sorted(problems, key=lambda p: (p.line, p.column)))


def _at(file: str, node: yaml.Node, message: str) -> Problem:
    return Problem(file, node.start_mark.line + 1, node.start_mark.column + 1, "", message)


def _tag(node: yaml.Node) -> str:
    """A tag as it was written: `!!int`, not `tag:yaml.org,2002:int`."""
    return node.tag.replace("tag:yaml.org,2002:", "!!")


def _kind(node: yaml.Node) -> str:
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _line_column(text: bytes | str, offset: int) -> tuple[int, int]:
    newline = b"\n" if isinstance(text, bytes) else "\n"
    before = text[:offset]
    return before.count(newline) + 1, offset - (before.rfind(newline) + 1) + 1

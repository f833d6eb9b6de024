"""Spec documents drawn from the JSON Schema that `tfc schema` prints: a hypothesis strategy for the
part of JSON Schema that tfcompiler/language/jsonschema.py writes (closed objects, `$ref`, `anyOf`,
`enum`, `const`, `minimum`, a float's string `pattern`, and the kind unions: an `allOf` of `if`/`then`
branches keyed by `kind`).

Not hypothesis-jsonschema: its last release (0.23.1) reaches into hypothesis internals that 6.170 no
longer has (`'many' object has no attribute 'more'` on the first object it draws), and it takes 24 s to
canonicalise this schema before drawing anything. Reading only what our schema writer emits keeps this
small, and an unknown keyword fails loudly (`UnknownKeyword`) rather than drawing documents the schema
does not describe.
"""
from __future__ import annotations

from functools import lru_cache

from hypothesis import strategies as st

# keywords that say nothing about which documents are valid
_NOTES = {"$schema", "$id", "title", "description", "default"}
_KNOWN = _NOTES | {"$defs", "$ref", "type", "properties", "additionalProperties", "required", "items", "anyOf",
                   "allOf", "enum", "const", "minimum", "pattern"}


class UnknownKeyword(ValueError):
    """The schema uses a keyword this strategy does not read: teach it here before trusting its documents."""


def small_integers(minimum: int | None) -> st.SearchStrategy[int]:
    """Integers a few past the schema's minimum (or about zero where it has none)."""
    low = -3 if minimum is None else minimum
    return st.integers(low, low + 6)


def documents(schema: dict, integers=small_integers, text=st.text(max_size=6)) -> st.SearchStrategy:
    """Documents valid against ``schema`` (its root, with `$ref`s into its `$defs`). ``integers(minimum)``
    draws each integer, ``minimum`` None where the schema has none (the schema bounds none from above, so the
    caller chooses how large); ``text`` draws free strings (names, paths)."""
    defs = schema.get("$defs", {})

    @lru_cache(maxsize=None)
    def named(name: str) -> st.SearchStrategy:
        return st.deferred(lambda: draw_for(defs[name]))

    def draw_for(node: dict) -> st.SearchStrategy:
        unknown = set(node) - _KNOWN
        if unknown:
            raise UnknownKeyword(f"{sorted(unknown)} in {sorted(node)}")
        if "$ref" in node:
            return named(node["$ref"].rsplit("/", 1)[-1])
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if "anyOf" in node:
            return st.one_of([draw_for(option) for option in node["anyOf"]])
        if "allOf" in node:
            return kind_union(node)
        kind = node.get("type")
        if kind == "object":
            return closed_object(node.get("properties", {}), node.get("required", ()))
        if kind == "array":
            return st.lists(draw_for(node["items"]), max_size=3)
        if kind == "integer":
            return integers(node.get("minimum"))
        if kind == "number":
            return st.floats(min_value=node.get("minimum"), allow_nan=False, allow_infinity=False)
        if kind == "string":
            return st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else text
        return {"boolean": st.booleans(), "null": st.none()}[kind]

    def closed_object(properties: dict, required) -> st.SearchStrategy[dict]:
        """The required properties and any of the others (the schema closes every object)."""
        optional = [name for name in properties if name not in required]
        return st.fixed_dictionaries({name: draw_for(properties[name]) for name in required},
                                     optional={name: draw_for(properties[name]) for name in optional})

    def kind_union(node: dict) -> st.SearchStrategy[dict]:
        """One branch of a kind union: its `kind` (left out, sometimes, for the default kind) and options."""
        branches = []
        for branch in node["allOf"]:
            if set(branch) != {"if", "then"}:
                raise UnknownKeyword(f"allOf entry with {sorted(branch)}: only kind unions (if/then) are read")
            then = branch["then"]
            may_omit_kind = "anyOf" in branch["if"]  # the default kind: `{"not": {"required": ["kind"]}}`
            required = [*then.get("required", ()), *(() if may_omit_kind else ("kind",))]
            branches.append(closed_object(then["properties"], required))
        return st.one_of(branches)

    root = {k: v for k, v in schema.items() if k != "$defs"}
    return st.deferred(lambda: draw_for(root))  # deferred: a short repr (hypothesis warns of a 200 kB one)

"""The spec shrinker: every shipped spec shrinks to a valid spec with the same ops in its IR and far fewer
parameters; heads keep their ratio, layers their runs, 2-D grids their proportions."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import declared_params
from tfcompiler.cli import main
from tfcompiler.language import load_spec, parse_spec
from tfcompiler.language.shrink import shrink_data, shrink_spec, shrink_text

SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def parameters(graph) -> int:
    return sum(math.prod(shape) for shape, _ in declared_params(graph).values())


def shrunk(name: str) -> dict:
    return shrink_data(yaml.safe_load((ROOT / "specs" / f"{name}.yaml").read_text()))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_shipped_spec_shrinks_to_a_valid_spec_with_the_same_ops(path):
    full, small = load_spec(path), shrink_spec(path)
    full_graph, small_graph = build_graph(full), build_graph(small)
    assert {full_graph.op(n).type for n in full_graph.nodes()} == {small_graph.op(n).type for n in small_graph.nodes()}
    assert parameters(small_graph) <= min(150_000, parameters(full_graph) / 10)
    assert small.topology == full.topology and small.name == f"{full.name}-shrunk"
    assert [s.layers for _, s, _ in small.stacks()] <= [s.layers for _, s, _ in full.stacks()]
    # the text form is a spec file like any other
    assert parse_spec(shrink_text(path.read_text()), "shrunk.yaml").model == small.model


def test_heads_keep_their_ratio():
    llama, talking, bert, lstm = (shrunk(n)["model"] for n in ("llama-style", "talking-heads-realformer",
                                                                "bert-base", "lstm-lm"))
    assert (llama["heads"], llama["kv_heads"], llama["width"]) == (8, 2, 64)  # 4 query heads per kv head
    assert (talking["heads"], talking["kv_heads"]) == (4, 2)
    assert (bert["heads"], bert["width"], bert["ffn_width"]) == (4, 32, 128)  # ffn keeps 4x the width
    assert (lstm["heads"], lstm["width"]) == (1, 16)


def test_max_length_stays_on_its_side_of_long_from():
    from tfcompiler.lengths import LONG_FROM

    assert shrunk("bert-base")["model"]["max_length"] == 64
    assert shrunk("gpt2-small")["model"]["max_length"] == LONG_FROM  # 1024: long inputs lowered as such
    assert shrunk("sliding-window-decoder")["model"]["max_length"] == LONG_FROM


def test_layers_keep_each_run_and_are_renumbered():
    funnel = shrunk("funnel-transformer")["encoder"]  # 20 layers, pooled at 6 and 12, upsampled at 18
    assert funnel["layers"] == 8 and funnel["resample"]["shorten_at"] == [2, 4]
    assert funnel["resample"]["upsample_at"] == 6
    cpvt = shrunk("cpvt-encoder")["encoder"]  # the position generator on layer 1 of 12
    assert cpvt["layers"] == 4 and cpvt["overrides"][0]["layers"] == [1, 1]
    tdmca = shrunk("t-dmca")["decoder"]  # memory-compressed layers 1 and 3 of 5
    assert tdmca["layers"] == 5 and [o["layers"] for o in tdmca["overrides"]] == [[1, 1], [3, 3]]
    routing = shrunk("routing-transformer")["decoder"]  # routing on layers 10-11 of 12
    assert routing["layers"] == 4 and routing["overrides"][0]["layers"] == [2, 3]


def test_grids_keep_their_proportions():
    image = shrunk("image-transformer-2d")["block"]["attention"]  # 96-wide rows, [8, 32] blocks, [8, 16] flange
    assert (image["row_length"], image["query_shape"], image["memory_flange"]) == (24, [2, 8], [2, 4])
    patches = shrunk("patch-merging-encoder")  # a 32-wide grid pooled twice; rows of 32 then 16
    assert patches["encoder"]["resample"]["grid_width"] == 8
    assert patches["block"]["attention"]["row_length"] == 8
    assert patches["encoder"]["overrides"][0]["block"]["attention"]["row_length"] == 4


def test_options_that_scale_with_positions_and_heads_shrink():
    assert shrunk("sliding-window-decoder")["block"]["attention"]["window"] == 2
    spans = shrunk("multi-scale-encoder")["encoder"]["overrides"]  # one span per head: every other head kept
    assert [o["block"]["attention"]["span"] for o in spans] == [[1, 2, 3, 4], [3, 4, 4, 4]]
    routing = shrunk("routing-transformer")["decoder"]["overrides"][0]["block"]["attention"]
    assert routing["local_heads"] == 2 and routing["clusters"] == 4  # 4 of 8 local heads: 2 of 4
    assert shrunk("collaborative-bert")["block"]["attention"]["shared_width"] == 16  # half the width
    compressive = shrunk("compressive-transformer")["decoder"]
    assert compressive["memory"] == 4 and compressive["compressed_memory"] == {"length": 2, "rate": 3,
                                                                                "function": "conv"}
    nystrom = shrunk("nystromformer")["block"]["attention"]
    assert nystrom["landmarks"] == 4 and nystrom["conv_kernel"] == 3  # odd stays odd
    assert shrunk("reformer-lm")["block"]["ffn"]["chunk"] == 2


def test_tfc_shrink_prints_the_shrunk_spec(tmp_path, capsys):
    path = ROOT / "specs" / "llama-style.yaml"
    assert main(["shrink", str(path)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == shrink_data(yaml.safe_load(path.read_text()))
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("heads: 8", "heads: 7"))
    assert main(["shrink", str(bad)]) == 1  # located on the user's file, not on the copy
    assert "bad.yaml:" in capsys.readouterr().err


def test_a_kind_option_shrinks_by_the_rule_it_declares_not_by_its_name():
    from dataclasses import dataclass

    from tfcompiler.language import shrink
    from tfcompiler.language.kinds import ATTENTION, INPUTS, POSITIONS, AttentionKind
    from tfcompiler.language.schema import option
    from tfcompiler.language.shrink_rules import cap, grid

    @dataclass(frozen=True, kw_only=True)
    class ThrowawayOptions(AttentionKind):
        reach: int = option(64, doc="Keys each side.", minimum=1, shrink=cap(3))
        width: int = option(64, doc="Grid row length.", minimum=1, shrink=grid)
        seed: int = option(7, doc="Kept as written.")

    ATTENTION.register("throwaway", ThrowawayOptions)
    try:
        data = yaml.safe_load((ROOT / "specs" / "bert-base.yaml").read_text())
        data["block"]["attention"] = {"kind": "throwaway", "reach": 100, "width": 32, "seed": 100}
        data["encoder"]["overrides"] = [{"layers": [1, 1], "block": {"attention": {"kind": "throwaway", "reach": 2}}}]
        small = shrink_data(data)
        # 32 is the only grid: the largest power of two leaving it >= 2 is 16
        assert small["block"]["attention"] == {"kind": "throwaway", "reach": 3, "width": 2, "seed": 100}
        assert small["encoder"]["overrides"][0]["block"]["attention"] == {"kind": "throwaway", "reach": 2}
    finally:
        for table in (ATTENTION.kinds, ATTENTION.builders, ATTENTION.examples):
            del table["throwaway"]
    # and the shrinker names no option of any kind: each declares its rule on its field
    source = Path(shrink.__file__).read_text()
    declared = {f.name for registry in (ATTENTION, POSITIONS, INPUTS) for cls in registry.kinds.values()
                for f in dataclasses.fields(cls) if f.metadata.get("shrink")}
    assert declared and not [name for name in declared if f'"{name}"' in source or f"'{name}'" in source]

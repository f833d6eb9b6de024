"""The whole pipeline in one call: spec -> IR -> weights -> passes -> ONNX."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .builders import build_graph
from .builders.cache import cache_form, why_left_padding_shifts
from .builders.weights import declared_params, init_weights, load_weights
from .ir.graph import Graph
from .ir.interpret import random_feeds
from .lower.quantized import INT4_OPSET
from .lower.serialize import LoweredModel
from .lower.targets import PRECISIONS, TARGETS, fp32_only, kernels_for
from .lower.to_onnx import MAX_OPSET, MIN_OPSET, default_opset, to_onnx
from .lower.convert_precision import ConvertPrecision, convert_precision
from .passes.pipeline import PIPELINES, QUANTIZE, PipelineReport, make_pipeline, run_pipeline
from .passes.quantize_weights import QuantizeWeights
from .language import Spec, load_spec
from .language.rules import check_precision
from .language.shrink import shrink_spec
from .errors import TfcError
from .limits import check_weight_bytes


# small enough for the NumPy interpreter on a full-size model, long enough for masks and causality
CHECK_SIZES = {"batch_size": 2, "sequence_length": 5, "decoder_sequence_length": 4, "past_memory_length": 3,
               "past_sequence_length": 3,
               "past_compressed_length": 2, "past_pending_length": 1, "sentences": 3, "sentence_length": 4,
               "frames": 16}


def check_sizes(graph) -> dict[str, int]:
    """CHECK_SIZES, with every axis that must be offset + k·step (a position grid) set to two steps, and
    every bounded axis (speech frames) within its bounds."""
    rules, bounds = graph.metadata.get("length_rules", {}), graph.metadata.get("axis_bounds", {})
    sizes = {axis: rules[axis][0] + 2 * rules[axis][1] if axis in rules else size
             for axis, size in CHECK_SIZES.items()}
    return {axis: min(max(size, bounds[axis][0]), bounds[axis][1]) if axis in bounds else size
            for axis, size in sizes.items()}


def length_rules_metadata(graph) -> dict[str, str]:
    """``tfcompiler.length_rules``: {axis: [offset, step]}, lengths the model accepts are offset + k·step."""
    rules = graph.metadata.get("length_rules")
    return {"tfcompiler.length_rules": json.dumps({a: list(r) for a, r in sorted(rules.items())})} if rules else {}


def axis_bounds_metadata(graph) -> dict[str, str]:
    """``tfcompiler.axis_bounds``: {axis: [least, most]}, the lengths an axis takes (speech frames: at least
    those that leave one state after subsampling, at most those whose states fit max_length)."""
    bounds = graph.metadata.get("axis_bounds")
    return {"tfcompiler.axis_bounds": json.dumps({a: list(b) for a, b in sorted(bounds.items())})} if bounds else {}


def images_metadata(graph) -> dict[str, str]:
    """``tfcompiler.images``: {input: [height, width, channels]} for inputs that read an image's raster (pixels)."""
    images = graph.metadata.get("images")
    return {"tfcompiler.images": json.dumps(images, sort_keys=True)} if images else {}


# `check_numerics` evaluates the IR before and after every pass in NumPy (minutes at 100M parameters):
# above this many seeded parameters it verifies the model's IR after every pass and evaluates a shrunk
# copy of the spec (tfcompiler.language.shrink: every kind and option, toy sizes) instead
NUMERICS_FULL_UP_TO = 1_000_000


@dataclass
class Compiled:
    model: LoweredModel
    graph: Graph
    report: PipelineReport
    spec: Spec
    parameters: int = 0  # the spec's parameters (before packing or quantizing rewrote the weights)
    numerics: Compiled | None = None  # the shrunk copy whose numerics `check_numerics` evaluated, if it did


def verify_verdict(compiled: Compiled) -> str:
    """What `check_numerics` checked, in a line: the model's IR after every pass, where each IR pass's
    outputs were compared with the IR before the pipeline (the model itself, or its shrunk copy), and,
    with --dtype, how the precision pass's model was compared with the fp32 one."""
    def ir_records(report):
        return [record for record in report.records if record.name != ConvertPrecision.name]

    checked = compiled.numerics or compiled
    notes = [note for record in ir_records(checked.report) for note in record.notes
             if note.startswith("numerics checked:")]
    worst = max((float(re.search(r"within (\S+)", note).group(1)) for note in notes), default=0.0)
    where = (f"a shrunk copy of the spec ({checked.spec.model.width} wide, {checked.parameters:,} parameters)"
             if compiled.numerics else "the model itself")
    precision = [note for record in compiled.report.records if record.name == ConvertPrecision.name
                 for note in record.notes if note.startswith("numerics checked")]
    return (f"verified: the IR after each of {len(ir_records(compiled.report))} passes; numerics of each pass on "
            f"{where}: outputs within {worst:.3g} of the IR before the pipeline"
            + "".join(f"; {ConvertPrecision.name}: {note}" for note in precision))


def shrunk_copy(spec: Spec) -> Spec | None:
    """The spec's shrunk copy; None for a spec that is not a file, or one the shrinker cannot keep valid
    (its numerics are then checked on the model itself)."""
    try:
        return shrink_spec(spec)
    except (OSError, TfcError):
        return None


def compile_spec(spec: Spec | str | Path, weights: str | None = None, seed: int = 0,
                 opset: int | None = None, pipeline: str = "default", verify_each: bool = False,
                 dump_after: set[str] = frozenset(), check_numerics: bool = False,
                 progress=lambda step: None, target: str = "portable", quantize: str = "none",
                 dtype: str = "fp32", cache: bool = True, part: str | None = None) -> Compiled:
    """Compile a spec (or a spec file) to an ONNX model. ``weights`` is a safetensors file with
    canonical names; without it weights are initialised from ``seed``. ``check_numerics`` verifies
    the IR after every pass and evaluates it on small random inputs before and after each one.
    ``dtype`` (fp32, fp16, bf16) is what the model computes in. With ``cache`` a decoder that has an
    exact incremental form compiles with KV-cache inputs and outputs (tfcompiler.builders.cache); an
    encoder-decoder does as two models, ``part`` "encoder" and "decoder" (tfcompiler.builders.seq2seq).
    ``opset`` None: the newest the installed onnxruntime runs (lower/runtime_opset.py)."""
    opset = default_opset() if opset is None else opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TfcError(f"--opset {opset}: expected {MIN_OPSET}..{MAX_OPSET}")
    if target not in TARGETS:
        raise TfcError(f"--target {target}: expected one of {', '.join(TARGETS)}")
    if quantize not in QUANTIZE:
        raise TfcError(f"--quantize {quantize}: expected one of {', '.join(QUANTIZE)}")
    if dtype not in PRECISIONS[target]:
        allowed = [name for name, precisions in PRECISIONS.items() if dtype in precisions]
        computes = ", ".join(sorted(PRECISIONS[target]))
        raise TfcError(f"--dtype {dtype} is not for --target {target} (it computes in {computes}; "
                       f"--dtype {dtype} is for --target {' or '.join(allowed)})"
                       if allowed else f"--dtype {dtype}: expected one of fp32, fp16, bf16")
    if quantize == "int8" and dtype != "fp32":
        raise TfcError(f"--quantize int8 quantizes fp32 activations at run time; with --dtype {dtype} use "
                       "--quantize int4 (weight-only)")
    int4_layout = "nbits" if "MatMulNBits" in kernels_for(target, precision=dtype) else "rows"
    if quantize == "int4" and int4_layout == "rows" and opset < INT4_OPSET:
        raise TfcError(f"--quantize int4 for --target {target} needs --opset {INT4_OPSET} or later (4-bit "
                       f"DequantizeLinear with blocks), got {opset}; --target ort-cpu runs it at any opset")
    check_dump_after(dump_after, pipeline, quantize, dtype)
    if ConvertPrecision.name in dump_after and dtype == "fp32":
        raise TfcError(f"--dump-after {ConvertPrecision.name}: that pass runs with --dtype fp16 or bf16 only")
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    check_precision(spec, dtype)  # kinds ill-conditioned in fp16 / bf16 refuse them
    progress("build")
    graph = build_graph(spec, cache, part)
    check_weight_bytes(declared_params(graph))
    progress("weights")
    whole = build_graph(spec) if part else None
    graph.weights = load_weights(graph, weights, whole) if weights else init_weights(graph, spec.init, seed)
    parameters = sum(int(w.size) for w in graph.weights.values())
    progress("passes")
    small = shrunk_copy(spec) if check_numerics and parameters > NUMERICS_FULL_UP_TO and not weights else None
    feeds = random_feeds(graph, check_sizes(graph), pad_last=1) if check_numerics and small is None else None
    graph, report = run_pipeline(graph, make_pipeline(pipeline, quantize, int4_layout), verify_each or check_numerics,
                                 dump_after, feeds)
    if small is not None:
        progress("numerics on a shrunk copy")
        small = compile_spec(small, seed=seed, opset=opset, pipeline=pipeline, check_numerics=True, target=target,
                             quantize=quantize, dtype=dtype, cache=cache, part=part)
    progress("lower")
    metadata = {"tfcompiler.spec_name": spec.name, "tfcompiler.spec_sha256": spec.sha256,
                **length_rules_metadata(graph), **axis_bounds_metadata(graph), **images_metadata(graph),
                "tfcompiler.topology": spec.topology,
                "tfcompiler.vocab_size": str(spec.model.vocab_size),
                "tfcompiler.max_length": str(spec.model.max_length),
                "tfcompiler.cache": cache_form(spec, graph.metadata["no_cache"]),
                "tfcompiler.left_padding": why_left_padding_shifts(spec, not graph.metadata["no_cache"]) or "exact",
                **({"tfcompiler.part": part} if part else {}),
                "tfcompiler.weights": f"file:{Path(weights).name}" if weights else f"seed:{seed}",
                "tfcompiler.quantize": quantize, "tfcompiler.dtype": dtype,
                **({"tfcompiler.generation": json.dumps(spec.generation.settings(), sort_keys=True)}
                   if spec.generation else {})}
    model = to_onnx(graph, opset, metadata, target, precision=dtype)
    if dtype != "fp32":
        progress(dtype)
        model = convert_precision(model, dtype, set(graph.weights), fp32_only(target, dtype, opset), report,
                                  dump_after, check_sizes(graph) if check_numerics else None)
    return Compiled(model, graph, report, spec, parameters, small)


def check_dump_after(names, pipeline: str, quantize: str, dtype: str) -> None:
    """Refuse a --dump-after that would print nothing: a name no pass has (with a did-you-mean), a pass
    this pipeline does not run, or 'all' where no pass runs (compile_spec judges convert_precision, the
    one pass the --dtype decides)."""
    import difflib

    
    known = sorted({cls.name for passes in PIPELINES.values() for cls in passes}
                   | {QuantizeWeights.name, ConvertPrecision.name})
    running = [p.name for p in make_pipeline(pipeline, quantize)] + ([ConvertPrecision.name] if dtype != "fp32"
                                                                     else [])
    runs = f"the passes that run: {', '.join(running)}" if running else f"no pass runs with --pipeline {pipeline}"
    for name in names:
        if name == "all" and not running:
            raise TfcError(f"--dump-after all: {runs}")
        if name not in known + ["all"]:
            near = difflib.get_close_matches(name, known, n=1)
            raise TfcError(f"--dump-after {name}: no such pass" + (f"; did you mean {near[0]}?" if near else "")
                           + f" (passes: {', '.join(known)}, or all)")
        if name == QuantizeWeights.name and quantize == "none":
            raise TfcError(f"--dump-after {name}: that pass runs with --quantize int8 or int4 only")
        if name not in running and name not in ("all", ConvertPrecision.name):
            raise TfcError(f"--dump-after {name}: that pass does not run with these flags ({runs})")

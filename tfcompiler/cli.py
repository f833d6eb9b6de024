"""The `tfc` command line: compile, check, shrink, schema, init-weights, import-hf, inspect, run, generate,
export triton, serve.

User errors (a bad spec, mismatched weights, an unwritable path) print one clear message and exit 1;
usage errors (a bad flag value; `tfc run` inputs that do not fit the model) exit 2; anything else is
an internal error, reported without a traceback unless TFC_DEBUG=1, and exits 3. The runtime's
warnings (CUDA absent) print as one `tfc: warning: ...` line each.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import TfcError
from .lower.targets import TARGETS
from .lower.to_onnx import MAX_OPSET, MIN_OPSET


class Progress:
    """Step timings on stderr, so long compiles show where they are."""

    def __init__(self, quiet: bool):
        self.quiet, self.start, self.last = quiet, time.perf_counter(), None

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        if not self.quiet:
            print(f"  [{now - self.start:5.2f}s] {step}", file=sys.stderr, flush=True)
        self.last = now


def cmd_compile(args) -> int:
    from .builders.cache import why_no_cache
    from .builders.seq2seq import PARTS
    from .compiler import check_dump_after, compile_spec
    from .language import load_spec
    from .model_folder import WHOLE, folder_output, write_model_folder

    check_dump_after(args.dump_after or (), args.pipeline, args.quantize, args.dtype)
    folder = folder_output(args.output)  # before compiling: a bad -o fails at once
    progress = Progress(args.quiet)

    def compile_part(part=None):
        return compile_spec(spec, weights=args.weights, seed=args.seed, opset=args.opset,
                            pipeline=args.pipeline, dump_after=set(args.dump_after or ()),
                            check_numerics=args.verify, progress=progress, target=args.target,
                            quantize=args.quantize, dtype=args.dtype, cache=args.cache, part=part)

    spec = load_spec(args.spec)
    if folder is not None and args.cache and spec.encoder is not None and not why_no_cache(spec):
        compiled = {part: compile_part(part) for part in PARTS}  # an encoder-decoder generates as two models
        if spec.head.after_generation:  # and the one-graph model gives what the steps do not (a TTS post-net)
            compiled[WHOLE] = compile_part()
        for part, model in compiled.items():
            report_compile(args, model, f"{part} model" if args.explain else "")
        progress("write")
        return finish_compile(args, compiled["decoder"], write_model_folder(compiled, folder, external_data(args)),
                              progress)
    compiled = compile_part()
    report_compile(args, compiled)
    progress("write")  # a large model's weights take a while to write: say so before, not after
    if folder is None:
        return finish_compile(args, compiled, compiled.model.save(args.output, external_data=external_data(args)),
                              progress)
    return finish_compile(args, compiled, write_model_folder(compiled, folder, external_data(args)), progress)


def external_data(args) -> bool | None:
    return True if args.external_data else None


def report_compile(args, compiled, title: str = "") -> None:
    """What --explain, --dump-after and --verify print, and the cache's and missed fusions' notes (on
    stderr, which -q silences)."""
    from .compiler import verify_verdict

    if title:
        print(f"--- {title} ---")
    if args.explain:
        print(cache_summary(compiled))
        from .lower.targets import lowering_summary

        print(compiled.report.explain())
        if compiled.numerics:
            print(f"numerics, on a shrunk copy of the spec:\n{compiled.numerics.report.explain()}")
        print(lowering_summary(compiled.model.proto.graph, args.target, compiled.model.missed, args.dtype))
    elif (not args.quiet and compiled.spec.decoder is not None and args.cache and compiled.graph.metadata["no_cache"]
          and "part" not in compiled.graph.metadata):
        print(cache_summary(compiled), file=sys.stderr)
    if not (args.explain or args.quiet) and compiled.model.missed:  # --explain's summary says it too
        from .lower.targets import missed_fusions

        print("lowered without a fused form:\n" + "\n".join(missed_fusions(compiled.model.missed)), file=sys.stderr)
    for name, dump in compiled.report.dumps.items():
        print(f"--- IR after {name} ---\n{dump}")
    if args.verify:
        print(verify_verdict(compiled))


def finish_compile(args, compiled, written, progress) -> int:
    """Say what was written: the files (a model folder's notes on stderr), sizes and timings."""
    files = getattr(written, "files", written)
    for note in () if args.quiet else getattr(written, "notes", ()):
        print(note, file=sys.stderr)
    weight_bytes = compiled.model.weight_bytes
    print(f"compiled {compiled.spec.name} ({compiled.spec.topology}, {compiled.parameters:,} parameters, "
          f"{weight_bytes / 2 ** 20:,.1f} MiB of weights) -> "
          f"{', '.join(map(str, files))} [opset {compiled.model.opset}, target {args.target}, "
          f"{'' if args.quantize == 'none' else f'quantized {args.quantize}, '}"
          f"{'' if args.dtype == 'fp32' else f'{args.dtype}, '}"
          f"{len(compiled.model.proto.graph.node)} nodes, {time.perf_counter() - progress.start:.2f}s]")
    return 0


def cache_summary(compiled) -> str:
    """One line on the model's KV cache, or why it has none and what generation does instead."""
    if compiled.graph.metadata.get("part") == "encoder":
        return "cache: the encoder model runs once per source and gives present.N.encoder.key/value to the decoder"
    presents = [name for name in compiled.graph.outputs if name.startswith("present.")]
    if presents:
        return (f"cache: past_key_values.N.key/value -> present.N.key/value for {len(presents) // 2} layers, "
                "position_ids from the attention mask")
    if compiled.model.metadata.get("tfcompiler.cache") == "memory":
        carried = sorted({name.split(".")[0][len("present_"):] for name in compiled.graph.outputs
                          if name.startswith("present_")})
        return (f"cache: the segment memories ({', '.join(f'past_{x}.N -> present_{x}.N' for x in carried)}); "
                f"generation feeds one token a call, every "
                f"layer attending the last {compiled.spec.decoder.memory} states that entered it")
    read = type(compiled.spec.input_of("decoder"))
    if not read.reads_tokens:
        return (f"cache: none ({compiled.graph.metadata['no_cache']}); input '{read.KIND}' "
                "feeds no token ids back, so the model does not generate")
    return (f"cache: none ({compiled.graph.metadata['no_cache']}); generation recomputes the whole sequence at every "
            "step")


def cmd_check(args) -> int:
    from .language import load_spec

    spec = load_spec(args.spec)
    layers = ", ".join(f"{name} {stack.layers} layers" for name, stack, _ in spec.stacks())
    print(f"{args.spec}: ok ({spec.name}: {spec.topology}, {layers})")
    return 0


def cmd_shrink(args) -> int:
    from .language import load_spec, parse_spec
    from .language.shrink import shrink_text

    load_spec(args.spec)  # a spec's own problems are reported where it has them
    text = shrink_text(Path(args.spec).read_text(encoding="utf-8"))
    parse_spec(text, f"{args.spec} (shrunk)")
    print(text, end="")
    return 0


def cmd_schema(args) -> int:
    from .language.jsonschema import json_schema
    from .language.reference import markdown_reference

    print(markdown_reference() if args.markdown else json.dumps(json_schema(), indent=2))
    return 0


def cmd_init_weights(args) -> int:
    from .builders import build_graph
    from .builders.weights import declared_params, init_weights, save_weights
    from .language import load_spec
    from .limits import check_weight_bytes

    spec = load_spec(args.spec)
    graph = build_graph(spec)
    check_weight_bytes(declared_params(graph))
    weights = init_weights(graph, spec.init, args.seed)
    save_weights(weights, args.output, metadata={"tfcompiler.spec_sha256": spec.sha256})
    print(f"wrote {len(weights)} tensors ({sum(w.size for w in weights.values()):,} parameters) "
          f"to {args.output}")
    return 0


def cmd_import_hf(args) -> int:
    from .importers.hf import import_hf

    dropped = [] if args.drop_unplaced else None
    files = import_hf(args.model_dir, args.output, dropped)
    if dropped:
        print(f"left out {len(dropped)} checkpoint tensor(s) the model does not read (--drop-unplaced):\n"
              + "\n".join(f"  {name}" for name in dropped), file=sys.stderr)
    print(f"imported {args.model_dir} -> {', '.join(map(str, files))}")
    return 0


def cmd_inspect(args) -> int:
    from .inspection import format_report, inspect_path

    report = inspect_path(args.path, args.sequence)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_export_triton(args) -> int:
    from .export.triton_config import Settings
    from .export.triton_repository import export_triton

    settings = Settings(max_batch_size=args.max_batch_size, instances=args.instances, device=args.device,
                        queue_delay_us=args.max_queue_delay_us, state=args.state)
    exported = export_triton(args.model, args.output, settings, args.name)
    for note in () if args.quiet else exported.notes:
        print(note, file=sys.stderr)
    for config in exported.configs:
        batching = (f"sequence batching, {len(config.states)} implicit states" if config.states else
                    "dynamic batching" if config.max_batch_size else "no batching")
        print(f"exported {args.model} -> {Path(args.output) / config.name} [max_batch_size {config.max_batch_size}, "
              f"{batching}, {config.settings.instances} x {config.settings.device}]")
    return 0


def _precision_hint(path: str) -> str:
    import onnx

    try:
        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001  (no hint for a file onnx cannot read either)
        return ""
    if props.get("tfcompiler.dtype") == "bf16":
        return ": it computes in bf16, which onnxruntime runs on CUDA only (--device cuda, onnxruntime-gpu)"
    return ""


@contextlib.contextmanager
def warnings_as_lines():
    """Warnings raised inside (the runtime's fall back from CUDA to CPU) as one `tfc: warning: ...` line
    each on stderr, without Python's file, line and source echo; the Python API still warns as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for seen in dict.fromkeys(str(w.message) for w in caught):
                print(f"tfc: warning: {seen}", file=sys.stderr)


def usage_error(command: str, message: str) -> int:
    """Bad arguments found after parsing, reported as argparse reports its own: exit 2."""
    print(f"tfc {command}: error: {message}", file=sys.stderr)
    return 2


def count(least: int, most: int | None = None, why: str = ""):
    """An argparse type: an integer >= least (and <= most, ``why`` saying why there is a bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least or (most is not None and value > most):
            bound = f">= {least}" if most is None else f"in {least}..{most}{why}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {text!r}")
        return value
    return parse


def threads(text: str) -> int:
    """An argparse type for --threads: onnxruntime's intra-op threads, at most the runtime's bound here (a
    session starts them all at once)."""
    from tfc_runtime.session import THREADS_PER_CORE, most_threads

    return count(1, most_threads(), f" ({THREADS_PER_CORE} per core here)")(text)


def path(text: str) -> str:
    """An argparse type for an output path: an empty one would be the working folder."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got ''")
    return text


def load_npz(path: str) -> dict:
    """The named arrays of an .npz file; a ValueError saying what the file is instead."""
    import zipfile

    import numpy as np

    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # np.load's ways of saying "not arrays"
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except unreadable as error:  # numpy reads anything else as a pickle, which it refuses to load
        detail = "neither an .npz nor an .npy file" if "pickle" in str(error) else str(error)
        raise ValueError(f"not an .npz of named arrays ({detail})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError("a single array (.npy); give an .npz of named arrays (numpy.savez(path, input_ids=...))")
    with data:
        try:
            return dict(data)
        except unreadable as error:
            raise ValueError(f"cannot read its arrays ({error})") from None


def cmd_run(args) -> int:
    import numpy as np
    from tfc_runtime import Model, random_inputs

    try:
        with warnings_as_lines():
            model = Model(args.model, device=args.device, intra_op_threads=args.threads)
    except Exception as error:  # onnxruntime's own exceptions: a model its providers here cannot run
        if isinstance(error, (OSError, ValueError)):
            raise
        raise TfcError(f"onnxruntime cannot run {args.model} here ({error}){_precision_hint(args.model)}") from None
    source = (f"--inputs {args.inputs}" if args.inputs
              else f"random inputs of --batch {args.batch} --sequence {args.sequence}")
    try:
        feeds = load_npz(args.inputs) if args.inputs else random_inputs(model, batch=args.batch,
                                                                        sequence=args.sequence, seed=args.seed)
        outputs = model.run(feeds)
    except ValueError as error:  # the inputs do not fit the model: names, shapes, ids, masks, lengths
        return usage_error("run", f"{source}: {error}")
    except MemoryError as error:  # inputs, or the model's activations for them, past this machine's memory
        return usage_error("run", f"{source}: not enough memory ({error})")
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        model.run(feeds)
        times.append(time.perf_counter() - start)
    print(f"{args.model} on {model.providers[0]}")
    for name, value in feeds.items():
        print(f"  input  {name}: {value.dtype}{list(value.shape)}")
    for name, value in outputs.items():
        print(f"  output {name}: {value.dtype}{list(value.shape)} "
              f"checksum(sum)={float(np.sum(value, dtype=np.float64)):.6f} "
              f"mean|x|={float(np.abs(value).mean()):.6f}")
    if times:
        print(f"  latency: median {np.median(times) * 1e3:.2f} ms, min {min(times) * 1e3:.2f} ms "
              f"over {len(times)} runs")
    return 0


class _TokenEcho:
    """A streamer (Hugging Face's put/end protocol) that prints one row's new tokens as they come."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.shown, self.prompt_seen = tokenizer, [], "", False

    def put(self, ids) -> None:
        if not self.prompt_seen:  # the first call hands over the prompt
            self.prompt_seen = True
            return
        self.ids.append(int(ids[0]))
        text = self.tokenizer.decode(self.ids) if self.tokenizer else " ".join(map(str, self.ids))
        print(text[len(self.shown):] if text.startswith(self.shown) else f" {text}", end="", flush=True)
        self.shown = text

    def end(self) -> None:
        print(flush=True)


def _tokenizer(folder: Path):
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise TfcError(f"--prompt needs a tokenizer: no {path} (give --input-ids instead)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise TfcError("--prompt needs the `tokenizers` package (pip install tokenizers); or give --input-ids") \
            from None
    return Tokenizer.from_file(str(path))


def _input_ids(text: str) -> list[list[int]]:
    example = "expected e.g. '[[5, 6, 7], [8, 9]]'"
    try:
        ids = json.loads(text)
    except json.JSONDecodeError as error:
        raise TfcError(f"--input-ids: not valid JSON ({error}); {example}") from None
    except RecursionError:
        raise TfcError(f"--input-ids: nested too deep for JSON's reader; {example}") from None
    if not isinstance(ids, list):
        raise TfcError(f"--input-ids: {example} (a list of prompts), got {text!r:.80}")
    return [ids] if ids and all(isinstance(t, int) for t in ids) else ids


def _input_features(path: str) -> dict:
    """--input-features: speech features (B, T, F) or one utterance's (T, F) in a .npy, or a .npz with
    input_features and an optional attention_mask (a feature extractor's output, np.savez(**features))."""
    import numpy as np

    try:
        loaded = np.load(path)
    except (OSError, ValueError) as error:
        raise TfcError(f"--input-features {path}: cannot read a .npy or .npz array ({error})") from None
    named = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else {"input_features": loaded}
    if "input_features" not in named:
        raise TfcError(f"--input-features {path}: the .npz has {sorted(named)}, not input_features")
    if named["input_features"].ndim == 2:  # one utterance
        named = {name: value[None] for name, value in named.items()}
    return {name: named[name] for name in ("input_features", "attention_mask") if name in named}


def cmd_generate(args) -> int:
    from tfc_runtime import Generator

    if (args.input_ids is None) + (args.prompt is None) + (args.input_features is None) != 2:
        raise TfcError("give the prompt as --input-ids '[[5, 6, 7]]' or as --prompt TEXT, or speech as "
                       "--input-features FILE.npy (one of the three)")
    try:
        with warnings_as_lines():
            generator = Generator(args.model, device=args.device, intra_op_threads=args.threads)
    except (OSError, ValueError) as error:
        raise TfcError(str(error)) from None
    except Exception as error:  # noqa: BLE001  (onnxruntime's own exceptions: a file it cannot load or run)
        raise TfcError(f"onnxruntime cannot run {args.model} here ({error})") from None
    tokenizer = _tokenizer(generator.folder) if args.prompt is not None else None
    speech = _input_features(args.input_features) if args.input_features is not None else {}
    prompts = None if speech else [tokenizer.encode(text).ids for text in args.prompt] if tokenizer else \
        _input_ids(args.input_ids)
    echo = _TokenEcho(tokenizer) if not args.json and prompts and len(prompts) == 1 and sys.stdout.isatty() else None
    options = {"do_sample": args.do_sample, "temperature": args.temperature, "top_k": args.top_k,
               "top_p": args.top_p, "seed": args.seed, "repetition_penalty": args.repetition_penalty}
    try:
        result = generator.generate(prompts, max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                                    eos_token_id=args.eos_token_id, streamer=echo, return_dict_in_generate=True,
                                    **options, **speech)
    except ValueError as error:
        raise TfcError(str(error)) from None
    rows = result.rows()
    if args.json:
        out = {"sequences": rows, "tokens_per_second": round(result.tokens_per_second, 3)}
        if tokenizer:
            out["texts"] = [tokenizer.decode(row) for row in rows]
        print(json.dumps(out))
        return 0
    if echo is None:
        for r, (row, length) in enumerate(zip(rows, result.prompt_mask.sum(axis=1))):
            prompt, new = row[:length], row[length:]
            shown = (f"{tokenizer.decode(prompt)!r} -> {tokenizer.decode(new)!r}" if tokenizer
                     else f"{prompt} -> {new}")
            print(f"[{r}] {shown}")
    print(f"{result.new_tokens} new tokens in {result.seconds:.3f} s ({result.tokens_per_second:.1f} tokens/s, "
          f"first after {result.first_token_seconds * 1e3:.1f} ms), "
          f"{carried_by(generator)} on {generator.model.providers[0]}",
          file=sys.stderr)
    return 0


def carried_by(generator) -> str:
    """What a step carries, for the summary line: the KV cache, the segment memories, or nothing."""
    if not generator.cached:
        return "recomputing each step"
    return "segment memories" if generator.model.metadata.get("tfcompiler.cache") == "memory" else "KV cache"


INT32, TRITON_INT = 2 ** 31 - 1, " (an int32 in Triton's configuration)"


def cmd_serve(args) -> int:
    """Loads the model here first, so a file onnxruntime cannot run fails before Ray starts."""
    from tfc_runtime.generation import model_files
    from tfc_runtime.session import Model

    try:
        import ray.serve  # noqa: F401
    except ImportError:
        raise TfcError('tfc serve needs Ray Serve: pip install "tfcompiler[serve]"') from None
    from tfc_runtime.serving import Settings, serve_forever

    try:
        with warnings_as_lines():
            Model(model_files(args.model)[0], intra_op_threads=1)
    except (OSError, ValueError) as error:
        raise TfcError(str(error)) from None
    except Exception as error:  # noqa: BLE001  (onnxruntime's own exceptions: a file it cannot load or run)
        raise TfcError(f"onnxruntime cannot run {args.model} here ({error})") from None
    settings = Settings(args.model, args.replicas, args.max_batch_size, args.batch_wait_ms, args.host, args.port,
                        args.address, args.threads, args.replica_cpus, args.max_ongoing_requests,
                        args.max_queued_requests)
    try:
        serve_forever(settings, announce=lambda line: print(line, flush=True))
    except OSError as error:
        raise TfcError(str(error)) from None
    return 0


def milliseconds(text: str) -> float:
    """An argparse type for --batch-wait-ms: a number of milliseconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds >= 0, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfc", description="Compile transformer specs (YAML) to ONNX.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile a spec to an ONNX model")
    c.add_argument("spec")
    c.add_argument("-o", "--output", required=True, type=path,
                   help="the .onnx file to write, or a model folder (a trailing slash, or an existing folder): "
                        "model.onnx, generation.json, genai_config.json where onnxruntime-genai runs the model, "
                        "and the spec's tokenizer files")
    c.add_argument("--weights", help="safetensors file with tfcompiler's canonical names")
    c.add_argument("--seed", type=count(0), default=0, help="seed of the random initialisation")
    c.add_argument("--opset", type=int, help=f"{MIN_OPSET}..{MAX_OPSET} (default: the newest the installed "
                   "onnxruntime runs)")
    c.add_argument("--target", default="portable", choices=sorted(TARGETS),
                   help="portable: standard ONNX ops only; ort-cpu / ort-cuda: also onnxruntime's contrib "
                        "kernels for that provider where the capability table allows")
    c.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"],
                   help="what the model computes in: fp16 / bf16 for portable and ort-cuda (weights and "
                        "activations; positions, buckets and masks stay fp32 until they meet activations; "
                        "fp16 models take and give fp16, bf16 models fp32)")
    c.add_argument("--quantize", default="none", choices=["none", "int8", "int4"],
                   help="int8: int8 weights (a scale per output column) for the linear maps, activations "
                        "quantized at run time; int4: weight-only 4-bit blocks (portable: --opset 21 or later)")
    c.add_argument("--no-cache", dest="cache", action="store_false",
                   help="a decoder without its KV cache: one forward over the whole input (by default a decoder "
                        "takes past_key_values.N.key/value and position_ids and gives present.N.key/value)")
    c.add_argument("--explain", action="store_true", help="print what each pass did")
    c.add_argument("--external-data", action="store_true",
                   help="weights in OUT.onnx.data (automatic over 2 GB)")
    c.add_argument("--pipeline", default="default", choices=["default", "none"])
    c.add_argument("--verify", action="store_true",
                   help="verify the IR after every pass and check its numerics on random inputs (on a shrunk "
                        "copy of the spec above 1M seeded parameters: same kinds and options, toy sizes)")
    c.add_argument("--dump-after", action="append", metavar="PASS",
                   help="print the IR after this pass ('all' for every pass)")
    c.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines nor notes on stderr (the result line and errors stay)")
    c.set_defaults(func=cmd_compile)

    c = sub.add_parser("check", help="validate a spec")
    c.add_argument("spec")
    c.set_defaults(func=cmd_check)

    c = sub.add_parser("shrink", help="print the spec at toy size: every kind and option kept (what --verify "
                                      "checks numerics on for large specs)")
    c.add_argument("spec")
    c.set_defaults(func=cmd_shrink)

    c = sub.add_parser("schema", help="print the JSON Schema of the spec language")
    c.add_argument("--markdown", action="store_true", help="the reference as Markdown instead")
    c.set_defaults(func=cmd_schema)

    c = sub.add_parser("init-weights", help="write seeded weights under their canonical names")
    c.add_argument("spec")
    c.add_argument("-o", "--output", required=True, type=path)
    c.add_argument("--seed", type=count(0), default=0)
    c.set_defaults(func=cmd_init_weights)

    c = sub.add_parser("import-hf", help="turn a Hugging Face model folder into a spec and weights")
    c.add_argument("model_dir")
    c.add_argument("-o", "--output", required=True, type=path,
                   help="folder for spec.yaml, weights.safetensors and the checkpoint's tokenizer files")
    c.add_argument("--drop-unplaced", action="store_true",
                   help="leave out (and list) the checkpoint tensors the model does not read, e.g. a masked-LM "
                        "head, instead of failing")
    c.set_defaults(func=cmd_import_hf)

    c = sub.add_parser("inspect", help="parameters, FLOPs, ops and I/O of a spec or a model")
    c.add_argument("path")
    c.add_argument("--sequence", type=count(1), default=128, help="sequence length for FLOPs")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_inspect)

    c = sub.add_parser("export", help="export a compiled model for a serving engine")
    engines = c.add_subparsers(dest="engine", required=True)
    c = engines.add_parser("triton", help="a Triton Inference Server model repository (onnxruntime backend)")
    c.add_argument("model", help="a compiled .onnx (its external data beside it) or a model folder (tfc compile -o "
                                 "DIR/); an encoder-decoder's folder gives NAME-encoder and NAME-decoder")
    c.add_argument("-o", "--output", required=True, type=path, metavar="REPO",
                   help="the model repository: REPO/NAME/config.pbtxt and REPO/NAME/1/model.onnx (other models "
                        "in REPO stay)")
    c.add_argument("--name", help="the Triton model's name (default: the spec's name)")
    c.add_argument("--max-batch-size", type=count(0, INT32, TRITON_INT), default=8,
                   help="rows Triton batches into one call (0: no batching; the client's rows as they come)")
    c.add_argument("--max-queue-delay-us", type=count(0, INT32, TRITON_INT), default=100,
                   help="how long a request waits for others to batch with, in microseconds")
    c.add_argument("--instances", type=count(1, INT32, TRITON_INT), default=1,
                   help="model instances (sessions) Triton runs")
    c.add_argument("--device", choices=["cpu", "cuda"],
                   help="KIND_CPU or KIND_GPU instances (default: cuda for a model that runs on CUDA only, else cpu)")
    c.add_argument("--state", default="auto", choices=["auto", "implicit", "client"],
                   help="a model that carries values between calls (KV caches, states, memories): Triton keeps "
                        "them (implicit, the sequence batcher) or the client sends and receives them (client); "
                        "auto: implicit where Triton starts them as the runtime does")
    c.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr (the result lines and errors stay)")
    c.set_defaults(func=cmd_export_triton)

    c = sub.add_parser("run", help="run a compiled model on onnxruntime")
    c.add_argument("model")
    c.add_argument("--inputs", help=".npz of named inputs (default: random)")
    c.add_argument("--batch", type=count(1), default=1)
    c.add_argument("--sequence", type=count(1), default=16)
    c.add_argument("--seed", type=count(0), default=0)
    c.add_argument("--repeat", type=count(0), default=10, help="timed runs after a warm-up")
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    c.add_argument("--threads", type=threads, help="onnxruntime intra-op threads")
    c.set_defaults(func=cmd_run)

    c = sub.add_parser("generate", help="generate tokens with a compiled decoder (greedy or sampled)")
    c.add_argument("model", help="an .onnx file, or a model folder: model.onnx (or an encoder-decoder's "
                                 "encoder_model.onnx and decoder_model.onnx), generation.json, tokenizer.json")
    c.add_argument("--input-ids", help="prompts as JSON token ids, e.g. '[[5, 6, 7], [8, 9]]'")
    c.add_argument("--prompt", action="append", help="a prompt as text (needs tokenizer.json in the model folder "
                                                      "and the tokenizers package); repeat it for a batch")
    c.add_argument("--input-features", help="speech for an encoder-decoder whose encoder reads frames: a .npy of "
                                            "features (batch, frames, F) or (frames, F), or a .npz with "
                                            "input_features and attention_mask")
    c.add_argument("--max-new-tokens", type=int, default=32)
    c.add_argument("--min-new-tokens", type=int, default=0)
    c.add_argument("--do-sample", action="store_true", help="sample (default: greedy)")
    c.add_argument("--temperature", type=float, default=1.0)
    c.add_argument("--top-k", type=int, default=50)
    c.add_argument("--top-p", type=float, default=1.0)
    c.add_argument("--seed", type=int, help="seed of the sampling")
    c.add_argument("--repetition-penalty", type=float, default=1.0)
    c.add_argument("--eos-token-id", type=int, help="default: the model's (generation.json or its metadata)")
    c.add_argument("--json", action="store_true", help='print {"sequences": [...], "tokens_per_second": ...}')
    c.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    c.add_argument("--threads", type=threads, help="onnxruntime intra-op threads")
    c.set_defaults(func=cmd_generate)

    c = sub.add_parser("serve", help="serve a compiled model over HTTP JSON on Ray Serve, with dynamic batching "
                                     "(pip install \"tfcompiler[serve]\")")
    c.add_argument("model", help="an .onnx file, or a model folder (tfc compile -o DIR/): a decoder's folder also "
                                 "serves /generate and /v1/completions")
    c.add_argument("--replicas", type=count(1), default=1, help="replicas, each with its own onnxruntime session")
    c.add_argument("--max-batch-size", type=count(1), default=8, help="rows one onnxruntime call runs at most")
    c.add_argument("--batch-wait-ms", type=milliseconds, default=5.0,
                   help="how long a batch waits for more requests before it runs")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=count(1, 65535), default=8000)
    c.add_argument("--address", help="a Ray cluster to run on (default: start Ray on this machine)")
    c.add_argument("--threads", type=threads, help="onnxruntime intra-op threads per replica (default: the cores "
                                                   "divided among the replicas)")
    c.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs Ray reserves for each replica")
    c.add_argument("--max-ongoing-requests", type=count(1),
                   help="requests one replica holds at once (default: twice --max-batch-size)")
    c.add_argument("--max-queued-requests", type=count(1), default=256,
                   help="requests waiting for a replica; past them a request gets 429 Too Many Requests")
    c.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except TfcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except MemoryError:  # what tfcompiler.limits did not foresee: still the spec's or the input's size
        print(f"error: tfc {args.command} ran out of memory: a size in the spec or the input asks for more than "
              "this machine has", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001  (the last line of defence against tracebacks)
        if os.environ.get("TFC_DEBUG"):
            raise
        print(f"internal error in tfc {args.command}: {type(e).__name__}: {e}\n"
              f"(set TFC_DEBUG=1 for the traceback and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())

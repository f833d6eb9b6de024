"""Lowering targets and the capability table that decides which dedicated kernels a target may use.

A target names the runtime the model is for. `portable` uses standard ONNX ops only, for any
runtime. `ort-cpu` and `ort-cuda` may also use onnxruntime contrib ops whose kernels exist on their
provider, at the precision compiled (`--dtype`), and compute what we need; each entry below is one
such kernel (or a standard-op strategy that pays on those providers only), with the precisions its
kernel takes on each provider (onnxruntime's docs/OperatorKernels.md, 1.32). CPU entries are checked
against our standard-op lowering on every test run (tests/test_targets.py); CUDA entries where a GPU
is present (the same tests skip, saying so, without one). A lowering asks `e.can(KERNEL)`; where the
answer is no, it emits standard ops. `fp32_only` lists the standard ops a provider has no kernel for
at a low precision: they join the precision pass's block list (lower/convert_precision.py), which
computes them in fp32, as it does the standard ops whose schema lacks it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .walk import every_node

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
FP32, ALL = frozenset({"fp32"}), frozenset({"fp32", "fp16", "bf16"})


@dataclass(frozen=True)
class Kernel:
    domain: str
    op_type: str
    since: str  # the first onnxruntime release with the kernel on those providers
    dtypes: dict  # provider -> the precisions (fp32, fp16, bf16) its kernel takes there
    use: str  # what the lowering uses it for
    slower_on: frozenset = frozenset()  # providers where it computes the same but measured slower: skipped
    decoding_pays_on: frozenset = frozenset()  # of those, where it measured faster at one token: a cached decoder's

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(self.dtypes)


CAPABILITIES: dict[str, Kernel] = {
    "LinearAttention": Kernel("com.microsoft", "LinearAttention", "1.32", {CPU: FP32},
                              "causal linear attention (update_rule linear) and RFA-Gate (gated): the recurrence "
                              "itself, O(F·Dv) state instead of chunked scores"),
    "MultiHeadAttention": Kernel("com.microsoft", "MultiHeadAttention", "1.17", {CPU: FP32, CUDA: ALL},
                                 "bidirectional attention without a bias: the CPU kernel's flash attention, memory "
                                 "linear in the length; with a key padding bias, an `If` runs it from 1024 keys "
                                 "whenever the batch holds no padding"),
    "QueryBlocks": Kernel("", "Loop", "1.0", {CPU: FP32},
                          "attention from 1024 keys that flash attention cannot take (causal, or a batch with "
                          "padding): one block of 256 queries per iteration, causal blocks over the keys up to "
                          "their end, so memory stays linear in the length and nothing above the diagonal is "
                          "computed (the CPU `Attention` kernel computes and keeps all S x T scores); an `If` keeps "
                          "shorter inputs on the standard lowering"),
    "DynamicQuantizeMatMul": Kernel("com.microsoft", "DynamicQuantizeMatMul", "1.10", {CPU: FP32},
                                    "`--quantize int8` linear maps: the activation's quantization and the integer "
                                    "GEMM in one kernel"),
    "Gelu": Kernel("com.microsoft", "Gelu", "1.10", {CPU: FP32, CUDA: ALL}, "gelu (erf) at any opset"),
    "FastGelu": Kernel("com.microsoft", "FastGelu", "1.10", {CPU: FP32, CUDA: ALL}, "gelu_tanh (GPT-2's gelu_new)"),
    "SkipLayerNormalization": Kernel("com.microsoft", "SkipLayerNormalization", "1.10", {CPU: FP32, CUDA: ALL},
                                     "skip_norm (a residual sum and its LayerNorm), on CUDA as onnxruntime's "
                                     "transformer optimizer fuses it; measured slower than Add + "
                                     "LayerNormalization on CPU (7.2 ms against about 2.6 ms for BERT-base's 24 "
                                     "pairs, 128 tokens), so not used there", slower_on=frozenset({CPU})),
    "SkipSimplifiedLayerNormalization": Kernel("com.microsoft", "SkipSimplifiedLayerNormalization", "1.14",
                                               {CPU: FP32, CUDA: ALL}, "skip_norm with RMSNorm, on CUDA; on CPU "
                                               "measured slower than Add + RMSNormalization over a prompt, so "
                                               "used there only in decoders with a KV cache, whose steps are one "
                                               "token (llama-style: about 5% faster a step)",
                                               slower_on=frozenset({CPU}), decoding_pays_on=frozenset({CPU})),
    "GroupQueryAttention": Kernel("com.microsoft", "GroupQueryAttention", "1.32", {CPU: FP32},
                                  "a cached decoder's self-attention (cached_attention): the cache append and "
                                  "causal attention over grouped heads in one kernel, in place into a preallocated "
                                  "cache when past and present share a buffer; rotary positions by com.microsoft "
                                  "RotaryEmbedding before it"),
    "MatMulNBits": Kernel("com.microsoft", "MatMulNBits", "1.17", {CPU: FP32, CUDA: ALL},
                          "`--quantize int4` linear maps: 4-bit weights in blocks of 32, activations in the "
                          "model's precision"),
}

TARGETS: dict[str, frozenset[str]] = {  # target -> the provider it runs on
    "portable": frozenset(),
    "ort-cpu": frozenset({CPU}),
    "ort-cuda": frozenset({CUDA}),
}
# the CPU kernels above are fp32, and onnxruntime's CPU provider runs an fp16 model by casting around
# the nodes it lacks fp16 kernels for: 0-5% slower than fp32 (benchmarks/precision.py); a half-size
# file is `--target portable --dtype fp16`
PRECISIONS = {"portable": ALL, "ort-cpu": FP32, "ort-cuda": ALL}

# standard ops whose kernels lack a precision (onnxruntime's docs/OperatorKernels.md at 001d12d: the
# op's newest CUDA row); a value is the first opset whose kernel has it, None for none
_CUDA_MISSING = {
    "fp16": {"Range": None},
    "bf16": {**dict.fromkeys(["Range", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Pad", "CumSum",
                              "Clip", "ArgMax", "Softplus", "MaxPool", "Log", "ReduceMax", "Einsum",
                              "DequantizeLinear", "Ceil", "TopK", "ReduceMean", "Floor", "Elu", "Sin", "Cos", "Round",
                              "ReduceL2", "Reciprocal"]),
             "Conv": 22, "AveragePool": 22, "HardSigmoid": 22},
}
def fp32_only(target: str, precision: str, opset: int) -> frozenset[str]:
    """The op types that compute in fp32 (between Casts) in a `precision` model for `target`, besides
    those the standard itself lacks the precision for (lower/precision.py asks onnx's schemas)."""
    if precision == "fp32":
        return frozenset()
    missing = _CUDA_MISSING[precision] if CUDA in TARGETS[target] else {}
    return frozenset(op for op, since in missing.items() if since is None or opset < since)


def kernels_for(target: str, measured_slower_too: bool = False, precision: str = "fp32",
                decoding: bool = False) -> frozenset[str]:
    """The CAPABILITIES keys a target uses at `precision` (with `measured_slower_too`, also those it
    skips because they did not pay: tests check that they compute the same; with `decoding`, for a
    decoder with a KV cache, also those that pay at one token)."""
    providers = TARGETS[target]

    def used(kernel: Kernel, provider: str) -> bool:
        return provider not in kernel.slower_on or measured_slower_too or (
            decoding and provider in kernel.decoding_pays_on)

    return frozenset(name for name, kernel in CAPABILITIES.items()
                     if any(precision in kernel.dtypes[p] and used(kernel, p) for p in kernel.providers & providers))


def capability_table() -> str:
    """The table as Markdown, for docs/targets.md (`python -m tfcompiler.docs docs/` writes it there)."""
    rows = ["| kernel | domain | providers (precisions) | since onnxruntime | used for |",
            "| --- | --- | --- | --- | --- |"]
    for k in CAPABILITIES.values():
        where = "; ".join(f"{provider.removesuffix('ExecutionProvider')} ({', '.join(sorted(k.dtypes[provider]))})"
                          + (" cached decoders only" if provider in k.decoding_pays_on else
                             " not used" if provider in k.slower_on else "") for provider in sorted(k.dtypes))
        rows.append(f"| `{k.op_type}` | {k.domain or 'ai.onnx'} | {where} | {k.since} | {k.use} |")
    return "\n".join(rows)


def label_of(node) -> str:
    """The label an emitted node's name ends with (`/decoder/layers/0/ffn/TokenChunks_2` -> TokenChunks)."""
    return node.name.rsplit("/", 1)[-1].split("_")[0]


def kernel_of(node) -> str | None:
    """The table entry a node is: a contrib op by its type; a standard op (a lowering strategy the
    table decides, like QueryBlocks' Loop) by the label its name ends with."""
    if node.domain:
        return node.op_type
    label = label_of(node)
    return label if label in CAPABILITIES and not CAPABILITIES[label].domain else None


def lowering_summary(graph, target: str, missed: dict | None = None, precision: str = "fp32") -> str:
    """For `--explain`: which of the capability table's kernels the lowering used, and how often
    (for a target that has kernels but used none, that none applied), the Casts a low precision
    added, then the fused forms and precisions the lowering could not use (`missed_fusions`): never
    silent."""
    used = Counter(filter(None, map(kernel_of, every_node(graph))))
    available = sorted(kernels_for(target, precision=precision))
    if used:
        kernels = ", ".join(f"{count} {op}" for op, count in sorted(used.items()))
        line = f"lowering for {target}: {sum(used.values())} dedicated kernel node(s): {kernels}"
    elif not available:
        line = f"lowering for {target}: standard ONNX ops only"
    else:
        line = f"lowering for {target}: none of its kernels applies to this model ({', '.join(available)})"
    return "\n".join([line] + loops(graph) + precision_casts(graph, precision) + missed_fusions(missed or {}))


def loops(graph) -> list[str]:
    """The standard `Loop`s the lowering chose (token chunks, groups of query blocks, ...), by label."""
    labels = Counter(label_of(node) for node in every_node(graph)
                     if node.op_type == "Loop" and not node.domain)
    labels = {label: count for label, count in labels.items() if label not in CAPABILITIES}  # counted as kernels
    return [f"  loops: {', '.join(f'{count} {label}' for label, count in sorted(labels.items()))}"] if labels else []


def precision_casts(graph, precision: str) -> list[str]:
    """For a low-precision model: how many Casts join fp32 index arithmetic and low-precision activations."""
    if precision == "fp32":
        return []
    casts = Counter(label for node in every_node(graph) if node.op_type == "Cast"
                    for label in [node.name.rsplit("/", 1)[-1]] if label in (f"to_{precision}", "to_fp32"))
    return [f"  {precision}: activations in {precision}, index arithmetic in fp32; "
            f"{casts[f'to_{precision}']} Cast(s) down, {casts['to_fp32']} up"]


def missed_fusions(missed: dict) -> list[str]:
    """One line per fused form some ops were lowered without: how many, and why."""
    return [f"  no {fused} for {count} op(s): {reason}" for (fused, reason), count in sorted(missed.items())]

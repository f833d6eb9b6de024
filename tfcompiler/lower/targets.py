"""Lowering targets and the capability table that decides which dedicated kernels a target may use.

A target names the runtime the model is for. `portable` uses standard ONNX ops only, for any
runtime. `ort-cpu` may also use onnxruntime contrib ops whose CPU kernels exist and compute what we
need; each entry below is one such kernel (or a standard-op strategy that pays on those providers
only), with the providers on which it was checked against our standard-op lowering
(tests/test_targets.py runs every CPU entry). A lowering asks `e.can(KERNEL)`; where the answer is
no, it emits standard ops.
"""
from __future__ import annotations

from dataclasses import dataclass

CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class Kernel:
    domain: str
    op_type: str
    since: str  # the first onnxruntime release with the kernel on those providers
    providers: frozenset[str]
    use: str  # what the lowering uses it for
    pays: bool = True  # False: checked to compute the same but measured slower here, so targets skip it


CAPABILITIES: dict[str, Kernel] = {
    "LinearAttention": Kernel("com.microsoft", "LinearAttention", "1.32", frozenset({CPU}),
                              "causal linear attention (update_rule linear) and RFA-Gate (gated): the recurrence "
                              "itself, O(F·Dv) state instead of chunked scores"),
    "MultiHeadAttention": Kernel("com.microsoft", "MultiHeadAttention", "1.17", frozenset({CPU}),
                                 "bidirectional attention without a bias: the CPU kernel's flash attention, memory "
                                 "linear in the length; with a key padding bias, an `If` runs it from 1024 keys "
                                 "whenever the batch holds no padding"),
    "QueryBlocks": Kernel("", "Loop", "1.0", frozenset({CPU}),
                          "attention from 1024 keys that flash attention cannot take (causal, or a batch with "
                          "padding): one block of 256 queries per iteration, causal blocks over the keys up to "
                          "their end, so memory stays linear in the length and nothing above the diagonal is "
                          "computed (the CPU `Attention` kernel computes and keeps all S x T scores); an `If` keeps "
                          "shorter inputs on the standard lowering"),
    "DynamicQuantizeMatMul": Kernel("com.microsoft", "DynamicQuantizeMatMul", "1.10", frozenset({CPU}),
                                    "`--quantize int8` linear maps: the activation's quantization and the integer "
                                    "GEMM in one kernel"),
    "Gelu": Kernel("com.microsoft", "Gelu", "1.10", frozenset({CPU}), "gelu (erf) at any opset"),
    "FastGelu": Kernel("com.microsoft", "FastGelu", "1.10", frozenset({CPU}), "gelu_tanh (GPT-2's gelu_new)"),
    "SkipLayerNormalization": Kernel("com.microsoft", "SkipLayerNormalization", "1.10", frozenset({CPU}),
                                     "skip_norm (a residual sum and its LayerNorm); measured slower than Add + "
                                     "LayerNormalization on CPU (7.2 ms against about 2.6 ms for BERT-base's 24 "
                                     "pairs, 128 tokens), so not used", pays=False),
    "SkipSimplifiedLayerNormalization": Kernel("com.microsoft", "SkipSimplifiedLayerNormalization", "1.14",
                                               frozenset({CPU}), "skip_norm with RMSNorm; measured slower than "
                                               "Add + RMSNormalization on CPU, so not used", pays=False),
    "MatMulNBits": Kernel("com.microsoft", "MatMulNBits", "1.17", frozenset({CPU}),
                          "`--quantize int4` linear maps: 4-bit weights in blocks of 32, fp32 activations"),
}

TARGETS: dict[str, frozenset[str]] = {  # target -> the provider it runs on
    "portable": frozenset(),
    "ort-cpu": frozenset({CPU}),
}


def kernels_for(target: str, measured_slower_too: bool = False) -> frozenset[str]:
    """The CAPABILITIES keys a target uses (with `measured_slower_too`, also those it skips because
    they did not pay: tests check that they compute the same)."""
    providers = TARGETS[target]
    return frozenset(name for name, kernel in CAPABILITIES.items()
                     if kernel.providers & providers and (kernel.pays or measured_slower_too))


def capability_table() -> str:
    """The table as Markdown (README, `tfc targets`)."""
    rows = ["| kernel | domain | providers | since onnxruntime | used for |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| `{k.op_type}` | {k.domain or 'ai.onnx'} | {', '.join(sorted(k.providers))} | {k.since} | "
             f"{k.use if k.pays else '(not used) ' + k.use} |" for k in CAPABILITIES.values()]
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


def lowering_summary(graph, target: str, missed: dict | None = None) -> str:
    """For `--explain`: which of the capability table's kernels the lowering used, and how often
    (for a target that has kernels but used none, that none applied), then the fused forms the
    lowering could not use (`missed_fusions`): never silent."""
    from collections import Counter

    from ..inspection import every_node

    used = Counter(filter(None, map(kernel_of, every_node(graph))))
    available = sorted(kernels_for(target))
    if used:
        kernels = ", ".join(f"{count} {op}" for op, count in sorted(used.items()))
        line = f"lowering for {target}: {sum(used.values())} dedicated kernel node(s): {kernels}"
    elif not available:
        line = f"lowering for {target}: standard ONNX ops only"
    else:
        line = f"lowering for {target}: none of its kernels applies to this model ({', '.join(available)})"
    return "\n".join([line] + loops(graph) + missed_fusions(missed or {}))


def loops(graph) -> list[str]:
    """The standard `Loop`s the lowering chose (token chunks, groups of query blocks, ...), by label."""
    from collections import Counter

    from ..inspection import every_node

    labels = Counter(label_of(node) for node in every_node(graph)
                     if node.op_type == "Loop" and not node.domain)
    labels = {label: count for label, count in labels.items() if label not in CAPABILITIES}  # counted as kernels
    return [f"  loops: {', '.join(f'{count} {label}' for label, count in sorted(labels.items()))}"] if labels else []


def missed_fusions(missed: dict) -> list[str]:
    """One line per fused form some ops were lowered without: how many, and why."""
    return [f"  no {fused} for {count} op(s): {reason}" for (fused, reason), count in sorted(missed.items())]

"""The typed spec: every section of the YAML language as a frozen dataclass.

Field docs here are the language reference: ``tfc schema`` and docs/language.md's reference are
generated from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .kinds import ATTENTION, HEADS, INPUTS, POSITIONS
from .rules import At, Section, Where
from .schema import FLOAT32_MAX, option
from .shrink_rules import cap, pooled_grid, token_id

PLAIN_ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")  # one input: what a head's dense layer may apply
ACTIVATIONS = PLAIN_ACTIVATIONS + ("swiglu", "geglu", "geglu_tanh")
NORMS = ("layer_norm", "rms_norm")
STACKS = ("encoder", "document", "decoder")


@dataclass(frozen=True, kw_only=True)
class Dims(Section):
    """Model sizes shared by every stack."""

    width: int = option(doc="Model width D (hidden size).", minimum=1)
    heads: int = option(doc="Attention (query) heads H.", minimum=1)
    kv_heads: int | None = option(None, doc="Key/value heads Hkv: 1 is multi-query, fewer than "
                                  "`heads` grouped-query. Default: `heads`.", minimum=1)
    head_width: int | None = option(None, doc="Head width Dh. Default: width / heads.", minimum=1)
    ffn_width: int = option(doc="Inner width of the feed-forward network.", minimum=1)
    vocab_size: int = option(doc="Vocabulary size (token ids are in [0, vocab_size)).", minimum=1)
    max_length: int = option(doc="Longest sequence the positional tables cover.", minimum=1)
    bias: bool = option(True, doc="Biases on the attention and FFN projections.")

    @property
    def kv(self) -> int:
        return self.kv_heads or self.heads

    @property
    def dh(self) -> int:
        return self.head_width or self.width // self.heads

    def problems(self, spec, where: Where):
        if self.head_width is None and self.width % self.heads:
            yield At("heads", f"width {self.width} is not divisible by {self.heads} heads (set head_width to decouple)")
        if self.heads % self.kv:
            yield At("kv_heads", f"{self.heads} heads are not divisible by {self.kv} key/value heads")


@dataclass(frozen=True, kw_only=True)
class Norm(Section):
    """A normalisation layer."""

    kind: str = option("layer_norm", doc="Normalisation.", choices=NORMS)
    epsilon: float = option(1e-5, doc="Epsilon added to the variance.", minimum=0.0)


@dataclass(frozen=True, kw_only=True)
class Ffn(Section):
    """The position-wise feed-forward network."""

    activation: str = option("gelu", doc="relu, gelu (erf), gelu_tanh, silu, or the gated "
                             "swiglu / geglu / geglu_tanh (two input projections, silu / gelu / tanh-gelu on "
                             "the gate; geglu_tanh is T5 v1.1's gated-gelu).",
                             choices=ACTIVATIONS)
    enabled: bool = option(True, doc="false: the block has no FFN sublayer (plain recurrent stacks).")
    chunk: int = option(0, doc="Tokens per chunk: the FFN runs over blocks of this many tokens one after "
                        "another (a `Loop`), so its hidden activations never exceed one block's, which "
                        "bounds the memory of long inputs (Reformer's chunked feed-forward, Hugging Face's "
                        "`chunk_size_feed_forward`); 0: all tokens at once.", minimum=0, shrink=cap(2))

    @property
    def gated(self) -> bool:
        return self.activation in ("swiglu", "geglu", "geglu_tanh")


@dataclass(frozen=True, kw_only=True)
class Block(Section):
    """One transformer block: attention and FFN sublayers with residuals and norms."""

    placement: str = option("pre", doc="Norm before each sublayer (pre) or after the residual "
                            "(post, the paper's and BERT's), or none: no residual and no norm, each "
                            "sublayer's output is the next one's input (plain RNN stacks); reversible: "
                            "Reformer's two residual streams (RevNet; Kitaev et al. 2020), y1 = x1 + "
                            "attention(norm(x2)), y2 = x2 + ffn(norm(y1)), both starting as the embeddings, "
                            "the stack's output their concatenation (width 2·model.width) after the final norm.",
                            choices=("pre", "post", "none", "reversible"))
    residual: str = option("add", doc="How a sublayer's output joins its input: add (x + f), or gru: a "
                           "GRU cell with the sublayer's output as its input and x as its state, "
                           "GRUCell(f, x), weights `<layer>.<sublayer>_gru.*` in torch.nn.GRUCell's layout "
                           "(the Compressive Transformer package's gru_gated_residual; Parisotto et al. 2020's "
                           "GTrXL gating). Pre- or post-norm blocks.", choices=("add", "gru"))
    norm: Norm = option(Norm(), doc="Norm of each sublayer.")
    attention: Any = option(None, doc="Attention kind and its options.", registry=ATTENTION)
    cross_attention: Any = option(None, doc="The cross-attention's kind and options in a decoder that "
                                  "reads an encoder (e.g. multi_head beside a recurrent self-attention). "
                                  "Absent: the block's `attention`.", registry=ATTENTION, inherits=True)
    positional: Any = option(None, doc="This block's positional scheme, in place of the model's "
                             "inside its self-attention (e.g. `none` for NoPE layers); a scheme "
                             "that acts on embeddings is added to the block's input. Absent: the "
                             "model's `positional`.", registry=POSITIONS, inherits=True)
    ffn: Ffn = option(Ffn(), doc="Feed-forward network.")

    def problems(self, spec, where: Where):
        if self.residual == "gru" and self.placement not in ("pre", "post"):
            yield At("residual", f"a gru residual gates a sublayer against its input: placement '{self.placement}' "
                     "has no residual of that kind (use pre or post)")
        if spec.topology == "encoder-decoder" and where.stack == "decoder":
            cross = self.cross_attention if self.cross_attention is not None else self.attention
            if cross.self_only:
                yield At("cross_attention", f"'{cross.KIND}' cannot attend an encoder: set block.cross_attention "
                         "(e.g. {kind: multi_head})")
        stack = getattr(spec, where.stack, None)
        if getattr(stack, "resample", None) is not None and self.attention.padded_queries == "zero":
            # a pooling layer's queries are the pooled sequence, whose padding the block is not handed
            yield At("attention", "padded_queries: zero is not written for stacks that resample")


@dataclass(frozen=True, kw_only=True)
class Override(Section):
    """Settings for a range of layers, merged over the stack's block."""

    layers: list[int] = option(doc="[first, last]: the inclusive, 0-based range of layers.")
    block: Any = option(doc="Block settings for those layers.", partial_of=Block)


@dataclass(frozen=True, kw_only=True)
class CompressedMemory(Section):
    """The Compressive Transformer's second memory: what falls out of the segment memory, compressed."""

    length: int = option(doc="Compressed states kept per layer.", minimum=1, shrink=cap(2))
    rate: int = option(3, doc="Evicted states per compressed state.", minimum=1)
    function: str = option("conv", doc="How a window of evicted states becomes one: a learned 1-D "
                           "convolution with kernel = stride = rate (the paper's best), or their mean.",
                           choices=("conv", "mean"))


@dataclass(frozen=True, kw_only=True)
class MemorySlots(Section):
    """Memformer's external memory."""

    count: int = option(doc="Memory slots K.", minimum=1, shrink=cap(4))
    forgetting: str = option("gru", doc="How a written slot replaces the old one: gru, a GRU cell gates the "
                             "old slot against the written one and a feed-forward sublayer follows (the public "
                             "implementation's writer); normalize, the written slot plus a learned per-slot "
                             "bias, layer-normalised (the paper's biased memory normalisation: a slot that "
                             "receives nothing new drifts to its bias).", choices=("gru", "normalize"))


@dataclass(frozen=True, kw_only=True)
class Resample(Section):
    """A stack whose length changes: Funnel Transformer's query pooling and upsampling decoder, or an
    Hourglass (shorten, run the inner layers, upsample)."""

    shorten_at: list[int] = option(doc="Layers whose input is pooled by `stride`; the layers after them "
                                   "run on the shorter sequence.")
    upsample_at: int | None = option(None, doc="The layer whose input returns to full length: each "
                                     "state spread over the tokens it pooled, plus the full-length "
                                     "states from before the first pooling. Absent: the stack's output "
                                     "stays short.", minimum=0)
    stride: int = option(2, doc="Tokens per pooling window.", minimum=2)
    queries_only: bool = option(True, doc="Funnel: a pooling layer's queries (and residual) are pooled, "
                                "its keys and values read the unpooled input. false (Hourglass): the "
                                "sequence is pooled before the layer. Decoders need false: they shift "
                                "the sequence right by stride - 1 before pooling, so no window sees a "
                                "later token.")
    pooling: str = option("mean", doc="A window's state: the mean of its states; linear: its states "
                          "concatenated and projected back to the width (Hourglass); merge: concatenated, "
                          "LayerNorm, projected without a bias (Swin's patch merging).",
                          choices=("mean", "linear", "merge"))
    grid_width: int | None = option(None, doc="The tokens are a raster-scan grid this many wide: windows are "
                                    "stride×stride squares (patch merging) and each pooling makes the grid "
                                    "stride times narrower and shorter. Encoders, queries_only false, no "
                                    "upsampling.", minimum=1, shrink=pooled_grid)
    upsampling: str = option("repeat", doc="Back to full length: each state repeated over its window, "
                             "or linear: projected to one state per position of its window (Hourglass).",
                             choices=("repeat", "linear"))
    last_window: str = option("short", doc="At a length that is not a multiple of the stride: short, the "
                              "last window holds the states left (mean pooling averages those; a decoder's causal "
                              "shift drops the last stride - 1 states); zero_filled, the sequence is first filled "
                              "with zero states (padding) to whole windows and then shifted, so mean pooling "
                              "divides by the stride and the shift drops fill before states (lucidrains' "
                              "hourglass-transformer-pytorch). Hourglass only.", choices=("short", "zero_filled"))
    attention: bool = option(False, doc="Hourglass's attention resampling: each pooled state attends the states "
                             "of its window, and after upsampling each full-length state attends the short state "
                             "it came from; each time one attention (plain multi-head, no positions, the keys "
                             "not normalised) and feed-forward sublayer with their own weights, placed and "
                             "normalised as the stack's blocks. Hourglass only (queries_only false, no "
                             "separate_cls or grid).")
    separate_cls: bool = option(False, doc="The first token ([CLS]) is never pooled with others "
                                "(Funnel's separate_cls). Mean pooling and repeat upsampling only.")
    truncate: bool = option(False, doc="With separate_cls: the last token is dropped before pooling, "
                            "so each pooling halves the length exactly (Funnel's truncate_seq).")

    def problems(self, spec, where: Where):
        stack, name = where.owner, where.stack
        if spec.topology not in ("encoder", "decoder"):
            yield f"pooling and upsampling need topology 'encoder' or 'decoder', got '{spec.topology}'"
        if name == "decoder" and self.queries_only:
            yield "a decoder pools the whole sequence after a causal shift: set queries_only: false"
        if self.separate_cls and (self.pooling, self.upsampling) != ("mean", "repeat"):
            yield "separate_cls keeps [CLS] out of mean pooling and repeat upsampling only"
        if stack.memory or stack.memory_slots:
            yield "a stack with a memory cannot change length"
        if self.grid_width is not None:
            levels = len(self.shorten_at)
            if self.grid_width % self.stride ** levels:
                yield f"grid_width {self.grid_width} must be divisible by stride^poolings = {self.stride ** levels}"
            if self.queries_only or self.upsample_at is not None or self.separate_cls or name != "encoder":
                yield "grid pooling (patch merging) is for encoders, with queries_only: false and no upsampling"
        points = sorted(self.shorten_at)
        if not points or points != sorted(set(points)) or not 0 < points[0] or points[-1] >= stack.layers:
            yield f"shorten_at needs distinct layers in 1..{stack.layers - 1}, got {self.shorten_at}"
        elif self.upsample_at is not None and not points[-1] < self.upsample_at < stack.layers:
            yield f"upsample_at must come after the last pooling ({points[-1]}) and before {stack.layers}, " \
                  f"got {self.upsample_at}"
        hourglass_only = [name for name, on in (("attention", self.attention),
                                                ("last_window: zero_filled", self.last_window == "zero_filled")) if on]
        if hourglass_only and (self.queries_only or self.separate_cls or self.grid_width is not None):
            yield f"{' and '.join(hourglass_only)} resample the Hourglass's way: queries_only false, no " \
                  "separate_cls, no grid_width"
        if self.truncate and not self.separate_cls:
            yield "truncate only applies with separate_cls (it drops the token [CLS] pushes out of the windows)"


@dataclass(frozen=True, kw_only=True)
class Stack(Section):
    """A stack of blocks (the encoder or the decoder)."""

    layers: int = option(doc="Number of blocks.", minimum=0)
    input: Any = option(None, doc="The input layer this stack reads, where it is not the spec's `input` (an "
                        "encoder-decoder reading speech frames into its encoder and token ids into its decoder).",
                        registry=INPUTS, inherits=True)
    final_norm: bool | None = option(None, doc="Norm after the last block. Default: true for pre-norm "
                                     "blocks, false for post-norm.")
    memory: int = option(0, doc="Transformer-XL segment recurrence: every layer also attends the last "
                         "`memory` states that entered it in earlier segments, given as inputs "
                         "`past_memories.N` (batch, past_memory_length, width) and returned updated as "
                         "`present_memories.N`. Decoders, with a relative positional scheme or none.",
                         minimum=0, shrink=cap(4))
    compressed_memory: CompressedMemory | None = option(None, doc="Compressive Transformer: the states "
                                                        "that leave the `memory`, compressed, kept as a further "
                                                        "state `past_compressed_memories.N` -> "
                                                        "`present_compressed_memories.N` that every layer also "
                                                        "attends (with `past_pending_memories.N`, evicted states "
                                                        "short of a window). Needs `memory`.")
    memory_states: str = option("input", doc="What a layer writes into its segment memory: its input "
                                "(Transformer-XL), normalised again by the reading layer's attention norm; or, "
                                "normalized, its input after its own attention norm, which the reader (and the "
                                "compressor) then take as they are (the Compressive Transformer package's memories). "
                                "normalized needs pre-norm blocks.", choices=("input", "normalized"))
    recurrence: str = option("standard", doc="Which layer's memory a layer reads: standard, its own; enhanced, "
                             "the memory written by the layer above in the earlier segments (layer N reads "
                             "`past_memories.N+1` and its compressed and pending states, the top layer the bottom "
                             "layer's, as the Compressive Transformer package's enhanced_recurrence rolls them), "
                             "and writes `present_memories.N` as what it read followed by its own states.",
                             choices=("standard", "enhanced"))
    memory_slots: MemorySlots | None = option(None, doc="Memformer: memory slots (learned at the start) that "
                                              "every layer reads through a cross-attention sublayer and a memory "
                                              "writer rewrites after the last layer, given as input "
                                              "`past_memory_slots` (batch, 0 at the first segment or count, width) "
                                              "and returned as `present_memory_slots`. Encoders.")
    resample: Resample | None = option(None, doc="Pool the sequence shorter at some layers and bring it "
                                       "back to full length at one (Funnel Transformer, Hourglass).")
    # `block` and `overrides` stay YAML here; the loader merges them into one Block per layer.
    block: Any = option(None, doc="Block settings for this stack, over the top-level `block`.",
                        partial_of=Block)
    overrides: list[Override] = option([], doc="Per-layer settings, later entries win.")

    def parts(self, spec, where: Where):
        """Its fields, then the resolved block of each layer (``encoder.layers[3].block``)."""
        yield from super().parts(spec, where)
        for i, block in enumerate(spec.blocks_of(where.path)):
            yield f"layers[{i}].block", block

    def problems(self, spec, where: Where):
        name, blocks = where.path, spec.blocks_of(where.path)
        if self.input is not None and name == "document":
            yield At("input", "the document stack reads the sentence vectors the encoder pools: it has no input "
                     "layer of its own")
        if self.compressed_memory is not None and not self.memory:
            yield At("compressed_memory", "a compressed memory holds what leaves the segment memory: set `memory` too")
        if self.memory_slots and (name != "encoder" or spec.topology not in ("encoder", "encoder-decoder")):
            yield At("memory_slots", "memory slots are read and written by an encoder: they need the encoder of "
                     "topology 'encoder' or 'encoder-decoder'")
        if self.memory and (name != "decoder" or spec.topology != "decoder"):
            yield At("memory", "segment memory needs topology 'decoder'")
        elif self.memory:
            yield from self._memory_position_problems(spec, blocks)
        if (self.memory_states, self.recurrence) != ("input", "standard") and not self.memory:
            yield At("memory_states" if self.memory_states != "input" else "recurrence",
                     "memory_states and recurrence say how the segment memory is written and read: set `memory` too")
        elif self.memory_states == "normalized" and any(block.placement != "pre" for block in blocks):
            yield At("memory_states", "normalized memories are the states after each layer's attention norm: every "
                     "block must be pre-norm")
        yield from self._reversible_problems(spec, blocks)

    @staticmethod
    def _memory_position_problems(spec, blocks):
        """Memory states keep their old positions: the first layer whose scheme restarts them (kinds.py)."""
        for i, block in enumerate(blocks):
            scheme = block.positional if block.positional is not None else spec.positional
            if scheme.numbers_from_segment_start:
                yield At("memory", f"layer {i}'s positional '{scheme.KIND}' numbers positions from each segment's "
                         "start; segment memory needs a relative scheme (transformer_xl, t5, alibi, shaw, music, "
                         "deberta) or none")
                return

    def _reversible_problems(self, spec, blocks):
        """Reformer's two residual streams run a whole one-stack model: every block, plain self-attention
        and FFN sublayers, and heads that read the streams' concatenation."""
        placements = {block.placement for block in blocks}
        if "reversible" not in placements:
            return
        if placements != {"reversible"}:
            yield "reversible blocks carry two streams from the embeddings to the final norm: every layer of the " \
                  f"stack must be reversible, got {sorted(placements)}"
        if spec.topology not in ("encoder", "decoder"):
            yield f"reversible blocks need topology 'encoder' or 'decoder', got '{spec.topology}'"
        if self.memory or self.memory_slots or self.resample is not None:
            yield "reversible blocks take no segment memory, memory slots or resampling"
        if any(not block.ffn.enabled or block.positional is not None for block in blocks):
            yield "reversible blocks need their FFN and the model's positional scheme"
        if spec.head.kind == "lm" and spec.head.tied:
            yield "reversible blocks output twice the model width: the LM head cannot be tied to the embedding " \
                  "(set head.tied: false)"


@dataclass(frozen=True, kw_only=True)
class Document(Stack):
    """The document stack of a hierarchical model: one position per sentence, over the sentence
    vectors the encoder's tokens pool into (HIBERT, Hi-Transformer)."""

    pooling: str = option("first", doc="How a sentence's tokens become its vector: the first token, the "
                          "mean of its real tokens, its last real token (HIBERT's EOS), or attention "
                          "pooling (a learned query attends the tokens).",
                          choices=("first", "mean", "last", "attention"))
    interleaved: bool = option(False, doc="Hi-Transformer: encoder layer i, then document layer i over "
                               "the pooled sentences, whose outputs are added to every token of their "
                               "sentence before encoder layer i+1 (both stacks have the same number of "
                               "layers). false: HIBERT, the whole encoder first, then the document stack.")

    def problems(self, spec, where: Where):
        yield from super().problems(spec, where)
        # (without an encoder the topology rule already speaks)
        if self.interleaved and spec.encoder is not None and self.layers != spec.encoder.layers:
            yield At("layers", f"an interleaved document stack runs beside the encoder layer by layer: it needs "
                     f"{spec.encoder.layers} layers, got {self.layers}")


@dataclass(frozen=True, kw_only=True)
class Embedding(Section):
    """How token embeddings are scaled, normalised and shared."""

    scale: bool | float = option(False, doc="Multiply token embeddings by √width (true) or by this "
                                 "number.")
    norm: str | None = option(None, doc="Norm after the embedding sum (BERT: layer_norm).",
                              choices=NORMS)
    norm_epsilon: float = option(1e-5, doc="Epsilon of the embedding norm.", minimum=0.0)
    shared: bool = option(True, doc="Encoder and decoder share one token embedding "
                          "(encoder-decoder only).")


@dataclass(frozen=True, kw_only=True)
class Generation(Section):
    """Token ids and defaults for generating text. A compiled model carries them in its metadata
    (`tfcompiler.generation`, JSON) and `tfc compile -o DIR/` writes them to DIR/generation.json (and
    genai_config.json); `tfc import-hf` takes them from the checkpoint's generation_config.json or
    config.json."""

    eos_token_id: int | list[int] | None = option(None, doc="The token that ends a sequence, or a list of "
                                                  "them: generation stops at any of them.", shrink=token_id)
    bos_token_id: int | None = option(None, doc="The token that begins a sequence.", minimum=0, shrink=token_id)
    pad_token_id: int | None = option(None, doc="The token that fills the rows of a batch shorter than the "
                                      "longest (the attention mask hides it).", minimum=0, shrink=token_id)
    decoder_start_token_id: int | None = option(None, doc="The token an encoder-decoder's decoder starts from "
                                                "(T5: the padding token).", minimum=0, shrink=token_id)
    max_new_tokens: int | None = option(None, doc="How many tokens generation adds by default. Absent: until "
                                        "an end token or the model's max_length.", minimum=1)

    def problems(self, spec, where: Where):
        if spec.decoder is None:
            yield f"`generation` needs a decoder: topology '{spec.topology}' does not generate tokens"
        read = type(spec.input_of("decoder"))
        if not read.reads_tokens:
            yield f"`generation` feeds back the token ids it picks, and input '{read.KIND}' reads none"
        for key in ("eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id"):
            ids = getattr(self, key)
            for token in ids if isinstance(ids, list) else [] if ids is None else [ids]:
                if not 0 <= token < spec.model.vocab_size:
                    yield At(key, f"token {token} is not in the vocabulary [0, {spec.model.vocab_size})")

    def settings(self) -> dict:
        """The fields that are set, by name (what `tfcompiler.generation` and generation.json record)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class Init(Section):
    """How `--seed` initialises weights."""

    scheme: str = option("normal", doc="normal(0, std) for matrices and embeddings (BERT, GPT-2), or "
                         "xavier_uniform for matrices (the paper's). Biases start at 0, norm scales "
                         "at 1.", choices=("normal", "xavier_uniform"))
    std: float = option(0.02, doc="Standard deviation of the normal scheme.", minimum=0.0)

    def problems(self, spec, where: Where):
        # normal draws reach about 6 standard deviations over a large table: past float32's range they are inf
        if self.std * 8 > FLOAT32_MAX:
            yield At("std", f"normal draws of std {self.std:g} overflow float32: expected at most "
                            f"{FLOAT32_MAX / 8:.3g}")


@dataclass(frozen=True, kw_only=True)
class Spec(Section):
    """A whole model."""

    tfc: int = option(doc="Spec language version; this is version 1.", choices=(1,))
    name: str = option(doc="Model name, recorded in the ONNX metadata.")
    topology: str = option(doc="encoder (bidirectional), decoder (causal), encoder-decoder "
                           "(cross-attention) or hierarchical (documents: the encoder reads each sentence, "
                           "the document stack reads the sentence vectors).",
                           choices=("encoder", "decoder", "encoder-decoder", "hierarchical"))
    model: Dims = option(doc="Model sizes.")
    input: Any = option(None, doc="The input layer.", registry=INPUTS)
    positional: Any = option(None, doc="Positional scheme.", registry=POSITIONS)
    embedding: Embedding = option(Embedding(), doc="Embedding options.")
    block: Any = option(None, doc="Default block settings for every stack.", partial_of=Block)
    encoder: Stack | None = option(None, doc="The encoder stack (encoder and encoder-decoder).")
    decoder: Stack | None = option(None, doc="The decoder stack (decoder and encoder-decoder).")
    document: Document | None = option(None, doc="The document stack (hierarchical).")
    head: Any = option(None, doc="Output head.", registry=HEADS)
    generation: Generation | None = option(None, doc="Token ids and defaults for generating text.")
    tokenizer: str | None = option(None, doc="The folder of the model's tokenizer files (tokenizer.json, "
                                   "tokenizer_config.json, special_tokens_map.json, vocabularies), relative to "
                                   "the spec's folder: `tfc compile -o DIR/` copies them into the model folder. "
                                   "`tfc import-hf` copies a checkpoint's next to the spec it writes, as `.`.")
    init: Init = option(Init(), doc="Initialisation for --seed.")
    # Filled by the loader: the resolved blocks of each stack, one per layer.
    encoder_blocks: tuple = field(default=(), compare=False, repr=False)
    decoder_blocks: tuple = field(default=(), compare=False, repr=False)
    document_blocks: tuple = field(default=(), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)
    sha256: str = field(default="", compare=False, repr=False)

    def stacks(self):
        """(name, Stack, blocks) for each stack present, in the order they run."""
        return [(name, getattr(self, name), getattr(self, f"{name}_blocks")) for name in STACKS
                if getattr(self, name) is not None]

    def input_of(self, stack: str):
        """The input layer's options a stack reads: its own `input`, else the spec's."""
        own = getattr(getattr(self, stack), "input", None)
        return own if own is not None else self.input

    def blocks_of(self, stack: str) -> tuple:
        """The resolved blocks of a stack, one per layer."""
        return getattr(self, f"{stack}_blocks")

    def problems(self, spec, where: Where):
        wanted = {"encoder": ("encoder",), "decoder": ("decoder",), "encoder-decoder": ("encoder", "decoder"),
                  "hierarchical": ("encoder", "document")}[self.topology]
        for stack in STACKS:
            present = getattr(self, stack) is not None
            if present != (stack in wanted):
                yield At(stack, f"topology '{self.topology}' "
                         f"{'has no' if present else 'needs a' + 'n' * (stack[0] in 'aeiou')} `{stack}` section",
                         located=None if present else "topology")

    @property
    def bidirectional(self) -> bool:
        """Every stack sees the whole input (no causal stack)."""
        return self.topology in ("encoder", "hierarchical")

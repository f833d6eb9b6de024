"""Input layer `vectors`: continuous vectors (B, S, F), the input of torch.nn.Transformer's src / tgt, of a
torch.nn.RNN / LSTM / GRU with its input_size, of attention modules that take features. A linear embedding
maps them to the model width (the weights `vectors.weight` (F, D) and `vectors.bias` under the stack's
embeddings, one pair for both stacks of an encoder-decoder with `embedding.shared`); vectors as wide as
the model enter it as they are. With `linear: false` vectors of another width enter the first layer as
they are, which must then take any width: a recurrent layer whose weight_ih is (directions, gates·H, F),
as torch's first layer with input_size F.

Graph inputs follow Hugging Face's names: ``inputs_embeds`` (float, role `vectors`) and
``attention_mask``; the decoder of an encoder-decoder reads ``decoder_inputs_embeds`` and
``decoder_attention_mask``. A decoder compiles with its KV cache as with tokens (a vector's embedding is
its own), so a caller can feed one new vector a call; generation, which feeds back the token ids it picks,
needs a token input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import INPUTS, InputKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import input_features
from .base import StackInput, embedding_tables, padding_mask, scaled


@dataclass(frozen=True)
class VectorOptions(InputKind):
    """Continuous vectors (B, S, F), linearly embedded when F is not the model width."""

    PAPER = "Vaswani et al. 2017 (torch.nn.Transformer's src / tgt); torch.nn.RNN's input_size"
    COMPUTES = "float vectors `inputs_embeds` (B, S, F), times a (F, width) matrix plus a bias where F is not the width"
    LOWERING = "`MatMul`, `Add` (nothing where F is the width)"
    no_cache_because: ClassVar[str] = ""  # a vector's embedding is its own

    features: int = option(0, doc="F, the length of each input vector; 0: the model width. Vectors as wide as "
                           "the model enter it as they are; others through a linear embedding (`linear`).",
                           minimum=0, shrink=input_features)
    linear: bool = option(True, doc="Vectors of another width than the model's are mapped to it by `vectors.weight` "
                          "(F, width); false: they enter the first layer as they are, which must be a recurrent "
                          "layer with `placement: none` (its weight_ih takes F, torch's input_size) in every "
                          "stack, with `positional: none`.")
    bias: bool = option(True, doc="A bias `vectors.bias` (width) on the linear embedding.")

    def width(self, spec) -> int:
        """F, the vectors' width."""
        return self.features or spec.model.width

    def embeds(self, spec) -> bool:
        """The vectors go through the linear embedding."""
        return self.linear and self.width(spec) != spec.model.width

    def parameters(self, spec) -> int:
        return embedding_tables(spec) * (self.width(spec) + self.bias) * spec.model.width if self.embeds(spec) else 0

    def problems(self, spec, where):
        if spec.topology == "hierarchical":
            yield "a hierarchical model reads documents of token ids (batch, sentences, sentence_length): " \
                  "input 'vectors' is for the other topologies"
        if self.linear or self.width(spec) == spec.model.width:
            return
        if type(spec.positional).KIND != "none":  # a position table is as wide as the model, not as F
            yield At("linear", f"vectors of width {self.width(spec)} enter the first layer as they are: they take "
                     f"no positions added at the embeddings (set positional: none, got '{type(spec.positional).KIND}')")
        for name, stack, blocks in spec.stacks():
            first = blocks[0] if blocks else None
            if first is None or first.placement != "none" or not type(first.attention).reads_any_width \
                    or first.positional is not None and type(first.positional).KIND != "none" \
                    or stack.memory or stack.memory_slots:  # memories are as wide as the model
                yield At("linear", f"vectors of width {self.width(spec)} (not the width {spec.model.width}) enter "
                         f"{name} layer 0 as they are: it must be a recurrent layer with placement: none, no "
                         "positions, in a stack with no memory or memory slots")


def build_vectors(ctx, options: VectorOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name, own_model=ctx.cache is not None)
    vectors = ctx.input(names.prefix + "inputs_embeds", "float32", names.shape + (options.width(spec),), role="vectors")
    mask = padding_mask(ctx, names)
    hidden = vectors
    if options.embeds(spec):
        if spec.topology == "encoder-decoder" and spec.embedding.shared:  # one embedding, named for both stacks
            with ctx.at_path("embeddings"):
                hidden = ctx.linear(vectors, spec.model.width, "vectors", bias=options.bias)
        else:
            hidden = ctx.linear(vectors, spec.model.width, "vectors", bias=options.bias)
    return StackInput(hidden=scaled(ctx, spec, hidden), mask=mask, ids=vectors)


INPUTS.register("vectors", VectorOptions, build_vectors, examples={
    "vectors_encoder_decoder": """
topology: encoder-decoder
input: {kind: vectors}
positional: {kind: sinusoidal, layout: interleaved}
block: {placement: post, ffn: {activation: relu}}
encoder: {layers: 2}
decoder: {layers: 2}
""",
    "vectors_encoder_tokens_decoder": """
topology: encoder-decoder
positional: sinusoidal
block: {placement: pre}
encoder: {layers: 1, input: {kind: vectors, features: 5}}
decoder: {layers: 1}
head: {kind: lm}
""",
    "vectors_embedded_decoder": """
topology: decoder
input: {kind: vectors, features: 7}
positional: rope
embedding: {scale: true}
decoder: {layers: 2}
head: {kind: lm, tied: false}
""",
    "vectors_unshared_encoder_decoder": """
topology: encoder-decoder
input: {kind: vectors, features: 5, bias: false}
positional: learned
embedding: {shared: false}
encoder: {layers: 1}
decoder: {layers: 1}
""",
    "vectors_into_a_bidirectional_lstm": """
topology: encoder
input: {kind: vectors, features: 6, linear: false}
positional: none
block: {placement: none, attention: {kind: recurrent, cell: lstm, bidirectional: true}, ffn: {enabled: false}}
encoder: {layers: 2}
head: {kind: classifier, labels: 3, pooling: mean}
""",
})

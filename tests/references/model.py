"""The reference forward pass of a spec: the spine — embeddings, norms, feed-forward networks,
pre-/post-norm and reversible residual blocks, stacks, cross-attention, heads — wiring the kinds'
references (tests/references/{inputs,positional,attention}/) as the spec says, through the test-side
registries, and reading weights by tfcompiler's canonical names. Everything runs in float64 so the
reference's own rounding does not eat into the test tolerance. Length-changing stacks, hierarchical
models and memories live in their own modules (mixins of ``Reference``)."""
from __future__ import annotations

import numpy as np

from .formulas import ACTIVATIONS, GATED, NEG, Norm, layer_norm, rms_norm
from .hierarchy import Hierarchy
from .memory import Memory
from .registry import ATTENTION, HEADS, INPUTS, POSITIONS, Site
from .resample import Resampled


class Reference(Resampled, Hierarchy, Memory):
    """The forward pass of a spec with the given weights (canonical names)."""

    def __init__(self, spec, weights: dict[str, np.ndarray]):
        self.spec = spec
        self.w = {k: v.astype(np.float64) for k, v in weights.items()}

    # --- layers ------------------------------------------------------------------------------------
    def linear(self, x, name, bias=None):
        """x W + b; attention and FFN projections follow `model.bias`, heads always have a bias."""
        y = x @ self.w[f"{name}.weight"]
        bias = self.spec.model.bias if bias is None else bias
        return y + self.w[f"{name}.bias"] if bias else y

    def heads(self, x, name):
        """(B, S, D) projected by `name` and split into heads (B, heads, S, d)."""
        y = self.linear(x, name)
        return y.reshape(y.shape[0], y.shape[1], -1, self.spec.model.dh).transpose(0, 2, 1, 3)

    def merge_heads(self, out, name):
        """Heads (B, H, S, d) joined and projected by `name` (the attention's output projection)."""
        return self.linear(out.transpose(0, 2, 1, 3).reshape(out.shape[0], out.shape[2], -1), name)

    def norm(self, x, norm, name, eps=None):
        """`norm` has the spec's kind and epsilon (a block's norm section, or formulas.Norm)."""
        eps = norm.epsilon if eps is None else eps
        if norm.kind == "rms_norm":
            return rms_norm(x, self.w[f"{name}.weight"], eps)
        return layer_norm(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias", 0.0), eps)

    def ffn(self, x, activation: str, name):
        act = ACTIVATIONS[activation]
        if activation in GATED:
            hidden = act(self.linear(x, f"{name}.gate")) * self.linear(x, f"{name}.up")
        else:
            hidden = act(self.linear(x, f"{name}.up"))
        return self.linear(hidden, f"{name}.down")

    def sublayer(self, x, block, name, f):
        """Pre-norm: x + f(LN(x)); post-norm: LN(x + f(x)); none: f(x)."""
        if block.placement == "none":
            return f(x)
        if block.placement == "pre":
            return self.join(x, f(self.norm(x, block.norm, f"{name}_norm")), block, name)
        return self.norm(self.join(x, f(x), block, name), block.norm, f"{name}_norm")

    def join(self, x, out, block, name):
        """x + out, or the Compressive Transformer package's GRU gating: GRUCell(out, x)."""
        return self.gru(f"{name}_gru", out, x) if block.residual == "gru" else x + out

    # --- embeddings and attention, through the kinds' registries ---------------------------------
    def embed(self, stack, ids, token_types, mask=None):
        spec = self.spec
        scope = "embeddings" if len(spec.stacks()) == 1 else f"{stack}.embeddings"
        read = spec.input_of(stack)
        x = INPUTS[read].embed(self, read, scope, ids, token_types)
        x = self.add_positions(x, spec.positional, scope, mask)
        if hasattr(INPUTS[read], "after_positions"):  # the input layer's rest (TTS: a norm, a speaker)
            x = INPUTS[read].after_positions(self, read, scope, x, spec.blocks_of(stack))
        if spec.embedding.norm:
            x = self.norm(x, Norm(spec.embedding.norm, spec.embedding.norm_epsilon), f"{scope}.norm")
        return x

    def add_positions(self, x, positional, scope, mask=None):
        """An absolute scheme's contribution at the embeddings or a block's input (B, S) `mask`."""
        return POSITIONS[positional].embed(self, positional, x, scope, mask)

    def mha(self, x, memory, key_bias, causal, options, name, positional=None, stack=None, state=None):
        """One attention sublayer of kind `options`; ``positional`` is the scheme of a self-attention
        (None for cross-attention)."""
        site = Site(x, key_bias, causal, options, name, positional, stack, state)
        return ATTENTION[options](self, x, memory, site)

    def attend(self, q, k, v, key_bias, causal, options, name, positional=None, stack=None, state=None,
               positions=None):
        """Heads (B,H,S,d) attend keys/values (B,Hkv,T,d), queries at the end of the keys; returns
        (B,H,S,dv). ``positions`` (S,) of the queries default to T-S .. T-1 (rotary only)."""
        site = Site(None, key_bias, causal, options, name, positional, stack, state, positions)
        return ATTENTION[options].attend(self, q, k, v, site)

    @staticmethod
    def real_queries(out, query_bias, options):
        """An attention sublayer's output (B, S, D), 0 where the query is padding (its bias (B, S) is
        not 0) when the kind's options say `padded_queries: zero` (x-transformers)."""
        if query_bias is None or options.padded_queries == "attend":
            return out
        return np.where((query_bias == 0)[..., None], out, 0.0)

    # --- stacks ------------------------------------------------------------------------------------
    def stack(self, name, stack, blocks, ids, mask, token_types=None, encoder=None):
        read = self.spec.input_of(name)
        if hasattr(INPUTS[read], "mask"):  # an input that changes the length (frames) changes the mask with it
            mask = INPUTS[read].mask(self, read, mask)
        x = self.embed(name, ids, token_types, mask)
        key_bias = None if mask is None else np.where(mask != 0, 0.0, NEG)
        state = {}
        read = self.spec.input_of(name)
        pairs = getattr(INPUTS[read], "pair_terms", None)  # terms over query-key pairs (a graph's edges)
        if pairs is not None:
            scope = "embeddings" if len(self.spec.stacks()) == 1 else f"{name}.embeddings"
            state["pair_terms"] = pairs(self, read, scope)
        if stack.resample is not None or POSITIONS[self.spec.positional].level_positions:
            return self.resampled(name, stack, blocks, x, mask, token_types, state)
        slots = None
        if stack.memory_slots:  # Memformer: the carried slots, or the learned ones at the first segment
            past = self.feeds["past_memory_slots"]
            slots = past if past.shape[1] else np.repeat(self.w[f"{name}.memory_slots.initial"], len(x), axis=0)
            encoder = (slots, None)
        if blocks[0].placement == "reversible":
            x = self.reversible(name, blocks, x, key_bias, state)
        else:
            for i in range(len(blocks)):
                x = self.layer(name, stack, i, x, key_bias, state, encoder)
        x = self.final_norm(name, stack, blocks, x)
        if slots is not None:
            self.present["present_memory_slots"] = self.write_slots(f"{name}.memory_writer", slots, x, key_bias,
                                                                    stack.memory_slots.forgetting)
        return x, key_bias

    def reversible(self, name, blocks, x, key_bias, state):
        """Kitaev et al. 2020 (RevNet, Gomez et al. 2017): streams x1 = x2 = the embeddings;
        y1 = x1 + Attention(LN(x2)), y2 = x2 + FFN(LN(y1)); the output [y1; y2]."""
        x1 = x2 = x
        for i, block in enumerate(blocks):
            p = f"{name}.layers.{i}"
            h = self.norm(x2, block.norm, f"{p}.attention_norm")
            x1 = x1 + self.real_queries(self.mha(h, h, key_bias, name == "decoder", block.attention,
                                                 f"{p}.attention", self.spec.positional, name, state),
                                        key_bias, block.attention)
            x2 = x2 + self.ffn(self.norm(x1, block.norm, f"{p}.ffn_norm"), block.ffn.activation, f"{p}.ffn")
        return np.concatenate([x1, x2], axis=-1)

    def layer(self, name, stack, i, x, key_bias, state, encoder=None, keys=None):
        """Block i; `keys`: the full-length input a pooling layer's queries x attend (Funnel)."""
        block = getattr(self.spec, f"{name}_blocks")[i]
        causal = name == "decoder"
        p = f"{name}.layers.{i}"
        positional = self.spec.positional
        if block.positional is not None:
            positional = block.positional
            x = self.add_positions(x, positional, p, None if key_bias is None else key_bias == 0)

        def attention(memory, bias):
            return lambda h: self.real_queries(self.mha(h, memory(h), bias, causal, block.attention,
                                                        f"{p}.attention", positional, name, state),
                                               key_bias, block.attention)

        past = self.feeds.get(f"past_memories.{self.memory_read(stack, i)}") if stack.memory else None
        if keys is not None:
            normed = self.norm(keys, block.norm, f"{p}.attention_norm") if block.placement == "pre" else keys
            x = self.sublayer(x, block, f"{p}.attention", attention(lambda h: normed, key_bias))
        elif past is None:
            x = self.sublayer(x, block, f"{p}.attention", attention(lambda h: h, key_bias))
        else:  # Dai et al. 2019: keys and values over [stop-gradient(memory); h], memory = earlier inputs
            normalized = stack.memory_states == "normalized"  # the layer writes its normalised input
            written = self.norm(x, block.norm, f"{p}.attention_norm") if normalized else x
            past = self.remember(stack, i, past, written, f"{p}.compress")
            states = self.norm(past, block.norm, f"{p}.attention_norm") if block.placement == "pre" and \
                not normalized else past
            with_past = None if key_bias is None else np.concatenate(
                [np.zeros((x.shape[0], past.shape[1])), key_bias], axis=1)
            x = self.sublayer(x, block, f"{p}.attention",
                              attention(lambda h: np.concatenate([states, h], axis=1), with_past))
        if encoder is not None:
            memory, memory_bias = encoder
            cross = block.attention if block.cross_attention is None else block.cross_attention
            x = self.sublayer(x, block, f"{p}.cross_attention",
                              lambda h: self.real_queries(self.mha(h, memory, memory_bias, False, cross,
                                                                   f"{p}.cross_attention"), key_bias, cross))
        if block.ffn.enabled:
            x = self.sublayer(x, block, f"{p}.ffn", lambda h: self.ffn(h, block.ffn.activation, f"{p}.ffn"))
        return x

    def final_norm(self, name, stack, blocks, x):
        final = stack.final_norm if stack.final_norm is not None else blocks[-1].placement in ("pre", "reversible")
        return self.norm(x, blocks[-1].norm, f"{name}.final_norm") if final else x

    # --- heads -------------------------------------------------------------------------------------
    def head(self, x, mask):
        return HEADS[self.spec.head].outputs(self, self.spec.head, x, mask)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.spec
        self.feeds = feeds
        self.present = {}
        self.handover = []  # the encoder's recurrent layers' final states, in order
        outputs = {}
        encoder = None
        mask = feeds.get("attention_mask")
        if spec.topology == "hierarchical":
            hidden, mask, outputs["token_hidden_state"] = self.hierarchy(
                feeds["input_ids"], feeds["attention_mask"], feeds.get("token_type_ids"))
        elif spec.encoder is not None:
            source = INPUTS[spec.input_of("encoder")].source(feeds, "")  # token ids or vectors
            hidden, bias = self.stack("encoder", spec.encoder, spec.encoder_blocks, source,
                                      feeds.get("attention_mask"), feeds.get("token_type_ids"))
            encoder = (hidden, bias)
            read = spec.input_of("encoder")
            if hasattr(INPUTS[read], "mask"):  # the head reads the mask of the subsampled states
                mask = INPUTS[read].mask(self, read, mask)
        if spec.decoder is not None:
            prefix = "decoder_" if spec.encoder is not None else ""
            mask = feeds.get(f"{prefix}attention_mask")
            source = INPUTS[spec.input_of("decoder")].source(feeds, prefix)
            hidden, _ = self.stack("decoder", spec.decoder, spec.decoder_blocks, source,
                                   feeds.get(f"{prefix}attention_mask"), feeds.get(f"{prefix}token_type_ids"),
                                   encoder)
            if encoder is not None and spec.head.kind == "none":
                outputs["encoder_last_hidden_state"] = encoder[0]
        outputs.update(self.head(hidden, mask))
        outputs.update(self.present)
        return outputs

"""Parity with Hugging Face transformers' Reformer where it reaches past the paper's attention: an
encoder's local attention, whose neighbouring chunks roll round the sequence's ends (`block_local`
with `wrap`), and LSH attention looking at chunks after its own (`lsh` `chunks_after`). ReformerModel
and ReformerModelWithLMHead from small random configs mixing "local" and "lsh" layers, saved, imported
with `tfc import-hf`, compiled and run on onnxruntime against the torch model, padded batches included;
and the refusals where a causal stack has no form for them.

Hugging Face runs in float64 here with its rotations drawn in float32, as the import draws them (see
test_parity_hf's Reformer test: in float32 its probabilities of a query that sees only itself sum to
0.998). Lengths are longer than one chunk: at one chunk or less Hugging Face skips chunking and LSH
attends every key. A length that is no multiple of the chunk Hugging Face pads with masked tokens."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from test_parity_hf import TOLERANCE, import_and_compile, padded_mask, randomise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def reformer(model_class: str, layers: list[str], **options):
    config = dict(hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48, vocab_size=60,
                  attn_layers=layers, num_buckets=4, num_hashes=2, lsh_attn_chunk_length=4, local_attn_chunk_length=4,
                  hash_seed=3, is_decoder=False, axial_pos_embds=True, axial_pos_shape=(4, 8),
                  axial_pos_embds_dim=(12, 20), max_position_embeddings=32, hidden_act="relu",
                  chunk_size_feed_forward=4, pad_token_id=0, tie_word_embeddings=False)
    return randomise(getattr(transformers, model_class)(transformers.ReformerConfig(**{**config, **options})), seed=4)


def run_torch(model, ids, mask):
    """The torch model's first output, in float64 with its rotations drawn in float32."""
    draw = torch.randn

    def float32_draw(*shape, dtype=None, **kwargs):
        return draw(*shape, dtype=torch.float32, **kwargs).to(dtype or torch.float32)

    with torch.no_grad(), mock.patch.object(torch, "randn", float32_draw):
        out = model.double()(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), use_cache=False)
    return out[0].numpy()


def assert_matches(model, session, shapes, pad: int, what: str):
    rng = np.random.default_rng(1)
    for batch, length in shapes:
        ids = rng.integers(1, 60, (batch, length))
        mask = padded_mask(batch, length, pad)
        want = run_torch(model, ids, mask)
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        assert got.shape == want.shape
        real = mask.astype(bool)  # padded positions' outputs are not defined
        error = float(np.abs(got[real] - want[real]).max())
        assert error <= TOLERANCE * max(1.0, float(np.abs(want[real]).max())), f"{what} {batch}x{length}: {error}"


@pytest.mark.parametrize("layers, local, lsh, pad", [
    (["local", "lsh", "local"], (1, 1), (1, 0), 0),
    (["local", "lsh", "local"], (1, 1), (1, 1), 3),
    (["lsh", "local"], (2, 1), (0, 2), 3),
    (["local", "local"], (1, 0), (1, 0), 5)])
def test_reformer_encoder_matches_transformers(tmp_path, layers, local, lsh, pad):
    """ReformerModel (is_decoder false): its local layers see the chunks before and after their own rolled
    round the ends, a chunk reached twice (2 chunks, one before and one after) counted twice; its LSH
    layers the chunks before and after theirs in every round's sorted chunks laid end to end."""
    model = reformer("ReformerModel", layers, local_num_chunks_before=local[0], local_num_chunks_after=local[1],
                     lsh_num_chunks_before=lsh[0], lsh_num_chunks_after=lsh[1])
    session = import_and_compile(model, tmp_path)
    spec = (tmp_path / "imported" / "spec.yaml").read_text()
    assert ("wrap: true" in spec) == ("local" in layers) and ("chunks_after" in spec) == (lsh != (1, 0))
    assert_matches(model, session, [(1, 8), (3, 16), (2, 14)], pad, f"{layers} local {local} lsh {lsh}")


@pytest.mark.parametrize("decoder, lsh_chunk, local_chunk", [(False, 4, 2), (False, 2, 4), (True, 2, 4)])
def test_reformer_pads_to_the_chunks_least_common_multiple(tmp_path, decoder, lsh_chunk, local_chunk):
    """Layers of other chunk lengths: Hugging Face pads a length that is no multiple of their least common
    multiple (4) to one, and the chunks rolled round the ends see that padding: imported as the kinds'
    `length_multiple` where it differs from their chunk."""
    model = reformer("ReformerModel", ["local", "lsh", "local"], is_decoder=decoder, lsh_attn_chunk_length=lsh_chunk,
                     local_attn_chunk_length=local_chunk, lsh_num_chunks_after=0 if decoder else 1)
    session = import_and_compile(model, tmp_path)
    assert "length_multiple: 4" in (tmp_path / "imported" / "spec.yaml").read_text()
    assert_matches(model, session, [(1, 6), (3, 10), (2, 13)], 2, f"chunks lsh {lsh_chunk} local {local_chunk}")


@pytest.mark.parametrize("pad", [0, 3])
def test_reformer_decoder_with_look_ahead_matches_transformers(tmp_path, pad):
    """ReformerModel with is_decoder true (causal; ReformerModelWithLMHead refuses a look-ahead): LSH
    layers looking one chunk ahead, whose keys the causal mask hides only where they come later in the
    sequence, beside a local layer."""
    model = reformer("ReformerModel", ["local", "lsh"], is_decoder=True, lsh_num_chunks_after=1)
    session = import_and_compile(model, tmp_path)
    assert_matches(model, session, [(1, 8), (3, 16)], pad, "decoder")


def test_reformer_encoder_local_attention_reads_the_last_chunk_from_the_first(tmp_path):
    """In an encoder Hugging Face's local attention masks nothing but padding: the first chunk's chunk
    before it is the last one, rolled round, and it is attended. One local layer, a chunk and the one
    before it, 3 chunks: the first position's output changes with a token of the last chunk, in torch
    and in the compiled model alike, and not with one of the middle chunk, which it does not see."""
    model = reformer("ReformerModel", ["local"], local_num_chunks_before=1, local_num_chunks_after=0)
    session = import_and_compile(model, tmp_path)
    ids, mask = np.random.default_rng(2).integers(1, 60, (1, 12)), np.ones((1, 12), np.int64)

    def first_position(ids):
        return run_torch(model, ids, mask)[0, 0], session.run(None, {"input_ids": ids, "attention_mask": mask})[0][0, 0]

    before = first_position(ids)
    for position, seen in ((10, True), (6, False)):
        changed = ids.copy()
        changed[0, position] = changed[0, position] % 59 + 1
        for want, got in zip(before, first_position(changed)):
            assert (np.abs(want - got).max() > 1e-3) == seen, (position, seen)
    assert_matches(model, session, [(1, 12)], 0, "one local layer")


def test_what_has_no_causal_form_is_refused(tmp_path, capsys):
    """The wrap of local attention would make a causal query's blocks depend on the input's length: a
    decoder's `wrap` is a located spec error, and a decoder Reformer whose local layers look ahead (its
    last chunk would see the first, rolled round) or two chunks back (at two chunks Hugging Face's rolls
    stop at the ends and a query sees its own chunk twice: 0.48 off at length 8) is refused by the
    import, not approximated."""
    from conftest import tiny_spec
    from tfcompiler.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(tiny_spec("decoder").replace("block: {", "block: {attention: {kind: block_local, block: 2, "
                                                 "wrap: true}, "))
    assert main(["compile", str(spec), "-o", str(tmp_path / "out.onnx"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "spec.yaml:" in err and "wrap is for bidirectional stacks" in err, err
    for option, message in (("local_num_chunks_after", "local_num_chunks_after must be 0 in a decoder"),
                            ("local_num_chunks_before", "local_num_chunks_before must be 0 or 1 in a decoder")):
        model = reformer("ReformerModel", ["local", "lsh"], is_decoder=True, **{option: 2})
        model.save_pretrained(tmp_path / option)
        assert main(["import-hf", str(tmp_path / option), "-o", str(tmp_path / f"{option}.out")]) == 1
        assert message in capsys.readouterr().err

"""`tfc import-hf`: a Hugging Face model folder (config.json + weights, as ``save_pretrained`` writes
them) -> a tfcompiler spec and a safetensors file under tfcompiler's canonical names.

Each supported ``model_type`` has one function that reads the config into a spec and names, for every
canonical weight, the checkpoint tensor it comes from:

- ``bert`` (BertModel, and task models whose keys start with ``bert.``): post-norm encoder, learned
  positions, token types, embedding LayerNorm, pooler when the checkpoint has one. nn.Linear
  weights are (out, in), so they are transposed to tfcompiler's (in, out).
- ``gpt2`` (GPT2Model / GPT2LMHeadModel, keys under ``transformer.``): pre-norm causal decoder,
  learned positions, final LayerNorm, LM head tied to the token embedding. GPT-2's Conv1D weights
  are already (in, out); its fused ``c_attn`` is split into query, key and value.
- ``llama`` (LlamaForCausalLM, keys under ``model.``): pre-norm RMSNorm decoder, half-split rotary
  positions (default or linear scaling), grouped-query attention, SwiGLU, untied or tied LM head.
- ``t5`` (T5Model, T5ForConditionalGeneration): pre-norm RMSNorm encoder-decoder, bucketed relative
  bias per stack (layer 0's table, shared), unscaled attention, no biases, ReLU or gated-gelu FFN,
  one shared token embedding; the LM head when the checkpoint has one (see t5.py).
- ``deberta-v2`` (DebertaV2Model, v2 and v3 checkpoints): post-norm encoder with disentangled
  attention (log buckets, relative embeddings with their LayerNorm, share_att_key), embedding
  LayerNorm. DeBERTa zeroes padded positions after its embeddings; those positions' outputs are
  not defined by tfcompiler, every other position matches.
- ``longformer`` (LongformerModel, keys under ``longformer.`` in task models): the BERT layout with
  RoBERTa's positions (numbered from pad_token_id + 1: the table is cut there, and the one token
  type 0's embedding folded into it), sliding-window attention of attention_window / 2 keys each side
  (per layer where they differ), and global attention with its own projections for the positions
  the ``global_attention_mask`` input marks.
- ``big_bird`` (BigBirdModel, keys under ``bert.`` in task models): the BERT layout; with
  attention_type block_sparse, the ``bigbird`` kind as Hugging Face runs it in eval mode (ITC: the
  first and the input's last block global, a window of three blocks of block_size, and
  num_random_blocks slots that all gather block 0: ``layout: first_block``). Hugging Face attends in
  full instead at (5 + 2·num_random_blocks)·block_size tokens or fewer (and its module stays switched
  afterwards); the compiled model is block-sparse at every length, so it equals Hugging Face above
  that length.
- ``reformer`` (ReformerModel / ReformerModelWithLMHead): reversible blocks, LSH attention as trax and
  Hugging Face run it (every bucket in a chunk, look-back rolled across hashing rounds, unscaled
  scores of unit keys, per-head rotations drawn from ``hash_seed`` with torch), local attention layers
  of decoders as ``block_local``, axial position embeddings flattened into a learned table, the LM
  head over both streams.
- ``vit`` (ViTModel, ViTForImageClassification; keys under ``vit.``): the `patches` input (the patch
  Conv2d as one MatMul, the class token, learned positions), pre-norm layers, the final layernorm; the
  pooler as the `pooler` head, the image classifier as `classifier` over the class token (see vit.py).
- ``deit`` (DeiTModel, DeiTForImageClassification; keys under ``deit.``): ViT's import with the
  distillation token after the class token (`distillation_token: true`).
- ``informer`` and ``time_series_transformer`` (InformerModel / TimeSeriesTransformerModel and their
  ForPrediction models; keys under ``model.``): encoder-decoders over the `features` input with Hugging Face's
  scaler, lags and static features in the graph, Informer's ProbSparse attention with Hugging Face's counts and
  its distilling layers (BatchNorm folded into the convolution), the distribution head as `forecast` (see
  time_series.py).
- ``speecht5`` (SpeechT5ForTextToSpeech): an encoder-decoder from text to mel frames: `phonemes` (the token
  table, the encoder's LayerNorm after the positions) with SpeechT5's relative position bias as Shaw's key
  term, `mel_frames` (the decoder pre-net, the speaker projection), the scaled sinusoids of both pre-nets as
  `scaled_sinusoidal`, post-norm layers, and the `spectrogram` head (mel and stop linears, the post-net with
  its BatchNorm folded). The pre-net's eval-mode dropout is not compiled (see speecht5.py).
- ``speech_to_text`` (Speech2TextModel, Speech2TextForConditionalGeneration; keys under ``model.``): an
  encoder reading `frames` (the Conv1d + GLU subsampler) and a decoder reading tokens, pre-norm, fairseq's
  sinusoidal positions from pad_token_id + 1, embeddings scaled by √d_model; the LM head tied (see
  speech_to_text.py).
- ``decision_transformer`` (DecisionTransformerModel): a decoder reading the `trajectory` input (returns-to-go,
  states, actions and timesteps) with the `action` head (state_preds, action_preds, return_preds); the GPT-2 trunk
  as GPT-2's import reads it, its position table's row 0 (the one Hugging Face adds to every token) as the
  input's position_bias (see decision_transformer.py).

Task heads (heads.py), with num_labels from the checkpoint: sequence classification as the
`classifier` head (BERT, Longformer, Funnel, Reformer encoders: dense and tanh over the first token;
DeBERTa-v2 and Nyströmformer with their pooler's activation; GPT-2 and Llama: `score` at the last
real token, `dense: false`; T5: over the decoder at its last real token), masked language modelling as
the `lm` head with a `transform` and a bias (BERT, Nyströmformer, DeBERTa-v2, Longformer; Funnel's
without a transform), token classification as `token_classifier` (every family; T5's with its encoder
alone) and question answering as `span` (every family; T5's over the decoder). Multiple-choice heads are
refused by name. Every checkpoint tensor is placed, or recognised as a buffer transformers saves
(position_ids, rotary inv_freq, GPT-2's masks), a tied copy equal to its original, or a parameter the
model never reads; any other fails the import, naming each tensor and its shape, before anything is
written.

Generation's token ids (generation_config.json, else config.json) become the spec's `generation`
section for models with a decoder, and the checkpoint's tokenizer files are copied next to the spec,
which names them (`tokenizer: .`) so that `tfc compile -o DIR/` puts them in the model folder.

Weights are read with safetensors; a ``pytorch_model.bin`` needs torch (the ``hf`` extra). One module
per family (encoders: the BERT family; big_bird; decoders: GPT-2 and Llama; t5; reformer; vit; speech_to_text;
speecht5; time_series; decision_transformer), checkpoint for what they share, and generation for the ids and
tokenizer files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from ...errors import TfcError
from ...language.kinds import HEADS, INPUTS
from .checkpoint import Checkpoint, load_tensors
from .decision_transformer import decision_transformer
from .decoders import gpt2, llama
from .generation import generation_section, tokenizer_files
from .heads import architecture, refuse_multiple_choice
from .big_bird import big_bird
from .encoders import bert, deberta_v2, funnel, longformer, nystromformer
from .reformer import reformer
from .speecht5 import speecht5
from .speech_to_text import speech_to_text
from .t5 import t5
from .time_series import time_series
from .vit import vit

IMPORTERS: dict[str, tuple[str, Callable]] = {"bert": ("encoder", bert), "gpt2": ("decoder", gpt2),
                                               "llama": ("decoder", llama), "t5": ("encoder-decoder", t5),
                                               "deberta-v2": ("encoder", deberta_v2),
                                               "longformer": ("encoder", longformer),
                                               "funnel": ("encoder", funnel),
                                               "nystromformer": ("encoder", nystromformer),
                                               "big_bird": ("encoder", big_bird),
                                               "reformer": ("decoder", reformer),  # or encoder: its config says
                                               "vit": ("encoder", vit), "deit": ("encoder", vit),
                                               "speecht5": ("encoder-decoder", speecht5),
                                               "speech_to_text": ("encoder-decoder", speech_to_text),
                                               "informer": ("encoder-decoder", time_series),
                                               "time_series_transformer": ("encoder-decoder", time_series),
                                               "decision_transformer": ("decoder", decision_transformer)}


def import_hf(model_dir: str | Path, out_dir: str | Path, dropped: list[str] | None = None) -> list[Path]:
    """Write ``out_dir/spec.yaml``, ``out_dir/weights.safetensors`` and the checkpoint's tokenizer files;
    returns their paths. A checkpoint tensor the model does not read fails the import, unless `dropped`
    is a list: it then receives their names (with shapes) and the import goes on without them."""
    from ...builders import build_graph
    from ...builders.weights import check_weights, save_weights
    from ...language import parse_spec

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise TfcError(f"{model_dir / 'config.json'}: cannot read the model config: {e}") from None
    model_type = config.get("model_type")
    if model_type not in IMPORTERS:
        raise TfcError(f"{model_dir}: model_type {model_type!r} is not supported; "
                       f"supported: {', '.join(sorted(IMPORTERS))}")
    topology, importer = IMPORTERS[model_type]
    checkpoint = Checkpoint(load_tensors(model_dir), str(model_dir))
    try:
        refuse_multiple_choice(config)
        body, weights = importer(config, checkpoint)
    except TfcError as e:
        raise TfcError(f"{model_dir / 'config.json'}: {e}") from None
    except KeyError as e:  # a setting the family's config always has
        raise TfcError(f"{model_dir / 'config.json'}: {model_type} config lacks {e}") from None
    if checkpoint.missing:
        raise TfcError(f"{model_dir}: checkpoint lacks tensors the model needs:\n" +
                       "\n".join(f"  {k}" for k in checkpoint.missing))
    unplaced = checkpoint.unplaced()
    if unplaced and dropped is not None:
        dropped.extend(f"{k} {list(checkpoint.tensors[k].shape)}" for k in unplaced)
    elif unplaced:
        raise TfcError(f"{model_dir}: {len(unplaced)} checkpoint tensor(s) of {architecture(config)} have no place "
                       "in the imported model (a task head or layer the importer does not read); "
                       "nothing was written:\n" +
                       "\n".join(f"  {k} {list(checkpoint.tensors[k].shape)}" for k in unplaced) +
                       "\n(to import the model without them, pass --drop-unplaced, or save the base model alone: "
                       "transformers.AutoModel.from_pretrained(DIR).save_pretrained(NEW_DIR))")
    name = config.get("_name_or_path") or model_dir.name
    spec_dict = {"tfc": 1, "name": Path(str(name)).name or model_type, "topology": topology, **body}
    steps = not HEADS.kinds[body.get("head", {}).get("kind", "none")].no_cache_because
    read = (body.get("decoder") or {}).get("input") or body.get("input") or {}  # what the decoder feeds back
    tokens = INPUTS.kinds[read.get("kind", INPUTS.default)].reads_tokens  # not TTS's mel frames
    generation = (generation_section(model_dir, config, spec_dict["model"]["vocab_size"])
                  if "decoder" in spec_dict and steps and tokens else {})  # models that generate token ids
    if generation:
        spec_dict["generation"] = generation
    tokenizer = tokenizer_files(model_dir)
    if tokenizer:
        spec_dict["tokenizer"] = "."
    text = (f"# Imported by `tfc import-hf` from {model_dir.name} "
            f"({architecture(config)}).\n"
            + yaml.safe_dump(spec_dict, sort_keys=False))
    spec = parse_spec(text, str(out_dir / "spec.yaml"))
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    check_weights(build_graph(spec), weights, str(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    from ...atomic import atomic_path

    for source in tokenizer:  # before the spec that names them
        with atomic_path(out_dir / source.name) as temp:
            shutil.copyfile(source, temp)
    with atomic_path(out_dir / "spec.yaml") as temp:
        temp.write_text(text, encoding="utf-8")
    save_weights(weights, str(out_dir / "weights.safetensors"),
                 metadata={"source": str(model_dir.name), "model_type": model_type})
    return [out_dir / "spec.yaml", out_dir / "weights.safetensors"] + [out_dir / source.name for source in tokenizer]

"""Text-to-speech: the mel frames of a compiled TTS model (an encoder on token ids, a decoder on `mel_frames`,
the `spectrogram` head), generated a step at a time as Hugging Face's SpeechT5 `generate_speech` does (Li et al.
2019's inference): the decoder starts from one all-zero frame; each step's last state gives r new frames (the
last of them is fed back) and r stop logits; a row is done at the first step where the sum of its r stop
probabilities sigmoid(logit) reaches `threshold` (not before `minlenratio`, and every row at `maxlenratio`, times
the source length over r); its spectrogram is then the post-net's over its frames so far.

The post-net reads the whole spectrogram, so the one-graph model (`model.onnx`: the source, the frames so far, the
speaker vector -> spectrogram, outputs_before_postnet, stop_logits) gives it. Alone, that model runs on the whole
prefix at each step (the decoder is causal: the prefix's frames are the earlier steps', to rounding), the
encoder and every earlier frame again each time. Given the generation pair too (`encoder_model.onnx` once,
`decoder_model.onnx` a frame a call from its KV cache, which output the frames and stop logits only), the steps
run from the cache and the one-graph model only at the steps where rows finish, over their frames."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .generation_step import present_of
from .session import Model

OUTPUTS = ("spectrogram", "outputs_before_postnet", "stop_logits")
PAIR = ("encoder_model.onnx", "decoder_model.onnx")  # a model folder's generation pair (tfcompiler.model_folder)


def folder_models(path: Path) -> tuple[Model, tuple[Model | None, Model | None]]:
    """A text-to-speech model folder's one-graph model.onnx, and its generation pair where it has one; an .onnx
    file alone."""
    if not path.is_dir():
        return Model(str(path)), (None, None)
    if not (path / "model.onnx").is_file():
        raise ValueError(f"{path}: no model.onnx, which gives the post-net's spectrogram (compile the TTS spec "
                         "with `tfc compile SPEC -o DIR/`, or pass the .onnx file)")
    pair = tuple(Model(str(path / name)) if (path / name).is_file() else None for name in PAIR)
    return Model(str(path / "model.onnx")), pair if all(pair) else (None, None)


@dataclass(frozen=True)
class Speech:
    """One generation: each row's spectrogram (frames, mels), the post-net applied, and the steps taken."""

    spectrograms: tuple[np.ndarray, ...]
    steps: int

    def padded(self) -> np.ndarray:
        """float32 (B, longest, mels), the shorter rows zero-filled after their end (torch's pad_sequence)."""
        longest = max(len(s) for s in self.spectrograms)
        out = np.zeros((len(self.spectrograms), longest, self.spectrograms[0].shape[-1]), np.float32)
        for row, spectrogram in enumerate(self.spectrograms):
            out[row, :len(spectrogram)] = spectrogram
        return out

    @property
    def lengths(self) -> list[int]:
        return [len(s) for s in self.spectrograms]


class CachedFrames:
    """The generation pair: the encoder model once, then the decoder model one frame a call, its KV cache kept."""

    def __init__(self, encoder: Model, decoder: Model, source: dict[str, np.ndarray]):
        self.decoder, self.names = decoder, {p.name for p in decoder.inputs}
        encoded = encoder.run({name: source[name] for name in ("input_ids", "attention_mask")})
        batch = len(source["input_ids"])
        self.feeds = {"encoder_attention_mask": source["attention_mask"],
                      **{name: value for name, value in source.items() if name == "speaker_embeddings"}}
        for port in decoder.inputs:
            if port.name.startswith("past_key_values.") and ".encoder." in port.name:
                self.feeds[port.name] = encoded[present_of(port.name)]
            elif port.name.startswith("past_key_values."):  # the decoder's own cache starts empty
                self.feeds[port.name] = np.zeros([batch, port.shape[1], 0, port.shape[3]], port.dtype)
        missing = sorted(self.names - set(self.feeds) - {"input_values", "attention_mask", "position_ids"})
        if missing:
            raise ValueError(f"the decoder model takes {missing}, which TTS generation does not feed")
        self.step = 0

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        batch = len(frames)
        feeds = {"input_values": frames[:, -1:], "attention_mask": np.ones((batch, self.step + 1), np.int64),
                 "position_ids": np.full((batch, 1), self.step, np.int64), **self.feeds}
        out = self.decoder.run({name: value for name, value in feeds.items() if name in self.names})
        self.feeds.update({name: out[present_of(name)] for name in self.names
                           if name.startswith("past_key_values.") and ".decoder." in name})
        self.step += 1
        return out


def generate_speech(model: Model | str | Path, input_ids, attention_mask=None, speaker_embeddings=None,
                    threshold: float = 0.5, minlenratio: float = 0.0, maxlenratio: float = 20.0,
                    encoder: Model | None = None, decoder: Model | None = None) -> Speech:
    """`model`: the one-graph model, or a model folder (`tfc compile -o DIR/`: its model.onnx and the generation
    pair beside it). `input_ids` int64 (B, S) padded on the right, `attention_mask` (B, S) (default: all real),
    and the `speaker_embeddings` (B, width) where the model takes them. Options as SpeechT5's generate_speech;
    `encoder` and `decoder`: the generation pair, for the steps (see the module's docstring)."""
    if not isinstance(model, Model):
        model, pair = folder_models(Path(model))
        encoder, decoder = (encoder, decoder) if encoder is not None or decoder is not None else pair
    names = {p.name for p in model.inputs}
    missing = [name for name in OUTPUTS if name not in {p.name for p in model.outputs}]
    if missing or "decoder_input_values" not in names:
        raise ValueError(f"generate_speech needs a text-to-speech model (input decoder_input_values; outputs "
                         f"{', '.join(OUTPUTS)}): this one takes {sorted(names)} and lacks outputs {missing}")
    if (encoder is None) != (decoder is None):
        raise ValueError("encoder and decoder: give both models of the generation pair, or neither")
    if not maxlenratio > 0 or minlenratio < 0:
        raise ValueError(f"expected maxlenratio > 0 and minlenratio >= 0, got {maxlenratio!r}, {minlenratio!r}")
    ids = np.asarray(input_ids, np.int64)
    if ids.ndim != 2 or not ids.size:
        raise ValueError(f"input_ids: expected token ids (batch, length), got shape {ids.shape}")
    batch = len(ids)
    source = {"input_ids": ids,
              "attention_mask": np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, np.int64)}
    if "speaker_embeddings" in names:
        if speaker_embeddings is None:
            raise ValueError("speaker_embeddings: this model reads a speaker vector per row (batch, width)")
        source["speaker_embeddings"] = np.asarray(speaker_embeddings, np.float32)
    elif speaker_embeddings is not None:
        raise ValueError("speaker_embeddings: this model takes no speaker vector")

    def whole(frames):  # the one-graph model over frames (B, T, mels)
        return model.run(source, decoder_input_values=frames,
                         decoder_attention_mask=np.ones(frames.shape[:2], np.int64))
    steps = CachedFrames(encoder, decoder, source) if encoder is not None else whole
    mels = next(p for p in model.inputs if p.name == "decoder_input_values").shape[-1]
    frames = np.zeros((batch, 1, mels), np.float32)  # the decoder starts from an all-zero frame
    done: dict[int, np.ndarray] = {}
    step = 0
    while len(done) < batch:
        step += 1
        out = steps(frames)
        reduction = out["stop_logits"].shape[1] // (1 if encoder is not None else frames.shape[1])
        if step == 1:
            longest, shortest = (int(ids.shape[1] * ratio / reduction) for ratio in (maxlenratio, minlenratio))
        frames = np.concatenate([frames, out["outputs_before_postnet"][:, -1:]], axis=1)  # the step's last frame
        if step < shortest:
            continue
        stop = 1 / (1 + np.exp(-out["stop_logits"][:, -reduction:].astype(np.float64)))
        met = range(batch) if step >= longest else np.flatnonzero(stop.sum(axis=-1) >= threshold)
        ending = [row for row in met if row not in done]
        if ending:  # the post-net over the frames so far (the one-graph model's, with the cache)
            spectrogram = out["spectrogram"] if encoder is None else whole(frames[:, :-1])["spectrogram"]
            done.update({row: spectrogram[row] for row in ending})
    return Speech(tuple(done[row] for row in range(batch)), step)

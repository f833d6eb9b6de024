"""What `Model.run` takes, checked against the model before onnxruntime sees it: types, shapes, and the
values the model's metadata bounds (token ids in the vocabulary, masks of 0s and 1s, positions and
lengths within `max_length`, the lengths a position grid accepts, an image's raster within its size). Gather
wraps a negative id and a cast truncates a mask of 0.5, both silently; onnxruntime's own complaint names a node,
not an input. So each check raises ValueError naming the input, the row and position, and what was expected. A
graph's adjacency (B, N, N) and edge types hold one entry per pair of nodes: both axes after the batch count the
nodes."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

# inputs that hold one entry per token: their named axes after the batch count tokens (or sentences); a
# vector's own axis, of fixed size (F), counts features
TOKEN_ROLES = ("token_ids", "padding_mask", "encoder_mask", "global_mask", "position_ids", "token_type_ids",
               "vectors", "node_types", "adjacency", "edge_types", "input_features", "intensities", "series",
               "time_features", "calendar_fields", "observed_mask", "timesteps")
MASK_ROLES = {"padding_mask": "1 for a token, 0 for padding", "encoder_mask": "1 for a token, 0 for padding",
              "global_mask": "1 for a global token, 0 for the others",
              "adjacency": "1 where a node attends another, 0 where not",
              "observed_mask": "1 for an observed value, 0 for a missing one"}
# ids into a table of their own, whose size the metadata states (tfcompiler.io_ranges: one size, or a list of one
# per column of the last axis, each column indexing its own table): what each one is
TABLE_ROLES = {"node_types": "a node type", "edge_types": "an edge type", "intensities": "an intensity",
               "timesteps": "a timestep",  # a Decision Transformer's: rows of its timestep table (max_ep_len)
               "static_categorical": "a category of static feature", "calendar_fields": "a calendar field of"}
# float inputs where a NaN or an infinity would spread through attention (a time series' missing values are 0s
# that past_observed_mask marks)
FINITE_ROLES = ("vectors", "pixel_values", "laplacian_eigenvectors", "input_features", "series", "time_features",
                "static_real")


@dataclass(frozen=True)
class Limits:
    """What the model's metadata states about its inputs (None where it states nothing)."""

    vocab_size: int | None = None
    max_length: int | None = None
    length_rules: dict | None = None  # axis -> (offset, step): lengths offset + k·step, k >= 1
    ranges: dict | None = None  # input -> n: its values lie in [0, n) (tfcompiler.io_ranges)
    axis_bounds: dict | None = None  # axis -> (least, most): speech frames, which a subsampler shortens
    images: dict | None = None  # input -> [height, width, channels]: it reads that image's raster (tfcompiler.images)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> Limits:
        def number(key):
            value = metadata.get(key, "")
            return int(value) if value.isdigit() else None
        rules = {axis: tuple(rule) for axis, rule in json.loads(metadata.get("tfcompiler.length_rules", "{}")).items()}
        ranges = json.loads(metadata.get("tfcompiler.io_ranges", "{}"))
        bounds = {axis: tuple(b) for axis, b in json.loads(metadata.get("tfcompiler.axis_bounds", "{}")).items()}
        images = json.loads(metadata.get("tfcompiler.images", "{}"))
        return cls(number("tfcompiler.vocab_size"), number("tfcompiler.max_length"), rules, ranges, bounds, images)


def _at(array: np.ndarray, bad: np.ndarray) -> tuple[str, object]:
    """The first offending element: its index as `[0, 3]` and its value."""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"[{', '.join(map(str, index))}]", array[index].item()


def as_array(port, value) -> np.ndarray:
    """``value`` as the input's dtype, refusing what is no array (ragged lists) and what a cast would change:
    a fraction, NaN, a string or a number past the integer type's range fed to an integer input (a mask of
    0.5 would become 0, an id of 1e30 or 2**64 - 1 would wrap), text fed to a float one."""
    dtype = np.dtype(port.dtype)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists: NumPy's message names no input
        raise ValueError(f"{port.name}: expected an array of numbers ({dtype}), got {type(value).__name__} that "
                         f"NumPy cannot read as one ({str(error).split('.')[0]})") from None
    if dtype.kind in "iu" and array.dtype.kind in "fiu":
        info = np.iinfo(dtype)
        with np.errstate(invalid="ignore"):  # NaN compares False: it is caught as not finite
            # (a float compares with max + 1: max itself rounds up to 2**63, which a cast would wrap)
            bad = (array < info.min) | (array >= float(info.max) + 1 if array.dtype.kind == "f" else array > info.max)
            if array.dtype.kind == "f":
                bad |= ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            where, got = _at(array, bad)
            expected = f"0 or 1 ({MASK_ROLES[port.role]})" if port.role in MASK_ROLES else f"an integer ({dtype})"
            raise ValueError(f"{port.name}{where}: expected {expected}, got {got}")
    elif array.dtype.kind not in "biuf":
        raise ValueError(f"{port.name}: expected numbers ({dtype}), got {array.dtype} values")
    return array.astype(dtype, copy=False)


def check_shapes(ports: list, arrays: dict[str, np.ndarray]) -> None:
    """Every input's rank and fixed sizes, and every named axis one size wherever it appears, a derived
    axis (`past_sequence_length+sequence_length`, the mask of a cached decoder) the sum of its parts:
    a ValueError that names the inputs and axes, not onnxruntime's first complaint."""
    sizes: dict[str, tuple[int, str]] = {}
    for port in ports:
        shape, name = arrays[port.name].shape, port.name
        if len(shape) != len(port.shape):
            raise ValueError(f"{name}: expected {len(port.shape)} axes {list(port.shape)}, got shape {list(shape)}")
        for axis, (want, got) in enumerate(zip(port.shape, shape)):
            if isinstance(want, int) and want != got:
                raise ValueError(f"{name}: axis {axis} must be {want} (shape {list(port.shape)}), got shape "
                                 f"{list(shape)}")
            if isinstance(want, str) and "+" not in want:
                seen = sizes.setdefault(want, (got, name))
                if seen[0] != got:
                    raise ValueError(f"{name}: axis {axis} ({want}) is {got}, but {seen[1]} has {want} = {seen[0]}")
    for port in ports:
        for axis, want in enumerate(port.shape):
            parts = str(want).split("+") if isinstance(want, str) and "+" in want else []
            if parts and all(part in sizes for part in parts):
                total, got = sum(sizes[part][0] for part in parts), arrays[port.name].shape[axis]
                if got != total:
                    raise ValueError(f"{port.name}: axis {axis} ({want}) must be {total} ("
                                     + " + ".join(f"{sizes[part][0]} {part} of {sizes[part][1]}" for part in parts)
                                     + f"), got {got}")


def check_lengths(ports: list, arrays: dict[str, np.ndarray], limits: Limits) -> None:
    """Per-token inputs: no empty axis, no axis past the batch longer than `max_length` (the positional
    tables' and the generator's bound), each axis a position grid restricts at a length it accepts, and an
    image's raster within the image (check_images)."""
    for port in ports:
        if port.role not in TOKEN_ROLES:
            continue
        shape = arrays[port.name].shape
        for axis, (label, size) in enumerate(zip(port.shape, shape)):
            if isinstance(label, int):  # a vector's features: check_shapes holds it to its size
                continue
            named = f"{port.name}: axis {axis} ({label})"
            if size == 0:
                raise ValueError(f"{named} is 0 (shape {list(shape)}): give at least one "
                                 + ("row" if axis == 0 else "token"))
            if label in (limits.axis_bounds or {}):  # frames: max_length bounds the states they leave
                check_frames(named, label, size, limits)
                continue
            if axis and limits.max_length is not None and size > limits.max_length:
                raise ValueError(f"{named} is {size}, over the model's max_length {limits.max_length}")
            offset, step = (limits.length_rules or {}).get(label, (None, None))
            if step and (size < offset + step or (size - offset) % step):
                below = offset + step * max(1, (size - offset) // step)
                raise ValueError(f"{named} is {size}; the model takes {offset} + {step}·k for k >= 1 "
                                 f"(the nearest: {below} or {below + step})")
    check_images(ports, arrays, limits)


def raster_length(image: list[int], per_pixel: bool) -> int:
    """The positions of an image's raster scan: its intensities, or its pixels where a position is a pixel."""
    height, width, channels = image
    return height * width * (1 if per_pixel else channels)


def check_images(ports: list, arrays: dict[str, np.ndarray], limits: Limits) -> None:
    """An image's raster no longer than the image, and positions within it: (B, S) intensities with channels as
    positions, S <= H·W·C; (B, S, C) pixels, S <= H·W (check_shapes holds C to the model's)."""
    for port in ports:
        image = (limits.images or {}).get(port.name)
        if image is None:
            continue
        array, per_pixel = arrays[port.name], len(port.shape) == 3
        longest = raster_length(image, per_pixel)
        what = f"the {'×'.join(map(str, image))} image's {longest} {'pixels' if per_pixel else 'intensities'}"
        layout = "[B, H·W, C]" if per_pixel else "[B, H·W·C]"
        if array.shape[1] > longest:
            raise ValueError(f"{port.name}: axis 1 ({port.shape[1]}) is {array.shape[1]}, more than {what} "
                             f"(a [B, height, width, channels] image reshaped to {layout})")
        for other in ports:
            if other.role == "position_ids" and (arrays[other.name] >= longest).any():
                where, got = _at(arrays[other.name], arrays[other.name] >= longest)
                raise ValueError(f"{other.name}{where}: expected a raster position of {what}, in [0, {longest}), "
                                 f"got {got}")


def check_frames(named: str, axis: str, size: int, limits: Limits) -> None:
    """Speech frames: enough for the subsampling convolutions to leave a state, few enough that their states
    fit max_length."""
    least, most = limits.axis_bounds[axis]
    if size < least:
        raise ValueError(f"{named} is {size}: too short for the model's subsampler, which needs at least {least} "
                         "frames to leave one state")
    if size > most:
        raise ValueError(f"{named} is {size}: the model takes at most {most} frames (their subsampled states "
                         f"must fit its max_length {limits.max_length})")


def check_values(ports: list, arrays: dict[str, np.ndarray], limits: Limits) -> None:
    """Ids within the vocabulary, masks (and adjacencies) of 0s and 1s, positions within `max_length`, segment ids
    within their table (>= 0 where the model does not say its size), node and edge types, intensities and timesteps
    within theirs, input vectors, pixels, speech features and Laplacian eigenvectors finite."""
    for port in ports:
        array = arrays[port.name]
        if port.role == "token_ids" and limits.vocab_size is not None:
            bad = (array < 0) | (array >= limits.vocab_size)
            expected = f"a token id in the vocabulary [0, {limits.vocab_size})"
        elif port.role in MASK_ROLES:
            bad, expected = (array != 0) & (array != 1), f"0 or 1 ({MASK_ROLES[port.role]})"
        elif port.role == "position_ids" and limits.max_length is not None:
            bad = (array < 0) | (array >= limits.max_length)
            expected = f"a position in [0, {limits.max_length}) (max_length {limits.max_length})"
        elif port.role in TABLE_ROLES and port.name in (limits.ranges or {}):  # Gather would wrap or fail
            sizes = np.asarray(limits.ranges[port.name])
            bad = ~np.isfinite(array) | (array < 0) | (array >= sizes)
            if not bad.any():
                continue
            column = int(np.argwhere(bad)[0][-1]) if sizes.ndim else None
            expected = f"{TABLE_ROLES[port.role]} in [0, {sizes})" if column is None else \
                f"{TABLE_ROLES[port.role]} {column} in [0, {sizes[column]})"
        elif port.role in FINITE_ROLES:  # a NaN or an infinity would spread through attention
            bad, expected = ~np.isfinite(array), "a finite number"
        elif port.role == "token_type_ids":
            types = (limits.ranges or {}).get(port.name)
            bad = (array < 0) | (array >= types) if types else array < 0
            expected = f"a segment id in [0, {types})" if types else "a segment id >= 0"
        else:
            continue
        if bad.any():
            where, got = _at(array, bad)
            raise ValueError(f"{port.name}{where}: expected {expected}, got {got}")

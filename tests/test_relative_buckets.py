"""The bucket tables that relative schemes gather from: the compile-time tables (computed in float32
as T5's and DeBERTa's code round them) equal the papers' formulas (tests/reference.py, float64) at
every distance a model of that size can see, and no bucket changes beyond the table's reach (the
graph clips distances to it)."""
from __future__ import annotations

import numpy as np
import pytest

from reference import deberta_bucket, t5_bucket as reference_t5_bucket
from tfcompiler.builders.positional.deberta import log_bucket
from tfcompiler.builders.positional.t5 import t5_bucket

DISTANCES = np.arange(-4096, 4097)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("buckets,max_distance", [(32, 128), (8, 10), (64, 256), (16, 12)])
def test_t5_buckets_match_the_formula_and_saturate_at_max_distance(buckets, max_distance, bidirectional):
    ours = t5_bucket(DISTANCES, bidirectional, buckets, max_distance)
    np.testing.assert_array_equal(ours, reference_t5_bucket(DISTANCES, bidirectional, buckets, max_distance))
    beyond = np.abs(DISTANCES) >= max_distance
    clipped = np.clip(DISTANCES, -max_distance, max_distance)
    np.testing.assert_array_equal(ours[beyond], t5_bucket(clipped, bidirectional, buckets, max_distance)[beyond])
    assert ours.min() >= 0 and ours.max() < buckets


@pytest.mark.parametrize("buckets,max_position", [(256, 512), (8, 12), (6, 40), (64, 128)])
def test_deberta_buckets_match_the_formula_and_saturate_within_reach(buckets, max_position):
    ours = log_bucket(DISTANCES, buckets, max_position)
    np.testing.assert_array_equal(ours, deberta_bucket(DISTANCES, buckets, max_position))
    span = buckets
    index = np.clip(ours + span, 0, 2 * span - 1)
    reach = 2 * max_position  # the reach deberta.py clips distances to
    outside = np.abs(DISTANCES) >= reach
    assert len(set(index[outside & (DISTANCES > 0)])) <= 1 and len(set(index[outside & (DISTANCES < 0)])) <= 1

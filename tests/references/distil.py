"""Informer's distilling layer (Zhou et al. 2021, its code's ConvLayer): X_{j+1} = MaxPool(ELU(BN(Conv1d(X_j)))),
the Conv1d of kernel 3 over the steps with circular padding, BatchNorm in eval mode (an affine map per channel,
here folded into the conv's weight and bias), ELU, and MaxPool1d(kernel 3, stride 2, padding 1) whose padding
never wins a maximum; the padding mask keeps each window's centre, step 2j."""
from __future__ import annotations

import numpy as np


def distil(x, weight, bias):
    """(B, S, D) -> (B, ⌈S/2⌉, D)."""
    s = x.shape[1]
    wrapped = np.concatenate([x[:, -1:], x, x[:, :1]], axis=1)
    conv = sum(wrapped[:, i:i + s] @ weight[:, :, i].T for i in range(3)) + bias
    elu = np.where(conv > 0, conv, np.expm1(np.minimum(conv, 0)))
    return np.stack([elu[:, max(2 * j - 1, 0):2 * j + 2].max(1) for j in range((s + 1) // 2)], axis=1)

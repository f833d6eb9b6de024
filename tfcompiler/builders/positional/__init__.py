"""Positional schemes (the `positional` registry), one file per family."""
from . import (absolute, alibi, conditional, deberta, funnel, local_rnn, music, rotary, shaw, t5,  # noqa: F401
               transformer_xl)

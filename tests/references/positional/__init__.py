"""NumPy references of the positional schemes, one module per kind (``absolute`` holds the learned,
sinusoidal, scaled sinusoidal and no positions); importing the package registers them."""
from . import (absolute, alibi, conditional, deberta, funnel, local_rnn, music, rope, shaw, t5,  # noqa: F401
               transformer_xl)

"""The spec's kind registries: input layers, positional schemes and attention kinds. Each variant
registers its options section and builder from its own file in ``tfcompiler.builders``."""
from .schema import KindRegistry

INPUTS = KindRegistry("input", "What the model reads: the input layer that makes the first hidden "
                      "states.", default="tokens")
POSITIONS = KindRegistry("positional", "How positions enter the model.", default="learned")
ATTENTION = KindRegistry("attention", "How a block's tokens attend to each other.", default="multi_head")

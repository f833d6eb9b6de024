"""The IR: a typed dataflow graph over NetworkX, its verifier and its NumPy interpreter."""
from .graph import Graph, Op, Value
from .interpret import evaluate, random_feeds
from .types import TensorType
from .verify import VerifyError, verify

__all__ = ["Graph", "Op", "Value", "TensorType", "evaluate", "random_feeds", "verify", "VerifyError"]

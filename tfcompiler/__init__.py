"""tfcompiler: a declarative graph compiler for transformer architectures.

YAML spec -> typed spec (``spec``) -> NetworkX IR (``ir``, made by ``build``) -> passes
(``passes``) -> ONNX (``lower``) that runs on onnxruntime.
"""
from .compiler import Compiled, compile_spec
from .errors import SpecError, TfcError, WeightsError
from .ir import Graph
from .language import Spec, load_spec, parse_spec
from .version import __version__

__all__ = ["compile_spec", "Compiled", "load_spec", "parse_spec", "Spec", "Graph", "TfcError",
           "SpecError", "WeightsError", "__version__"]

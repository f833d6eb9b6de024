"""Passes: graph rewrites with a tiny contract (``run(graph) -> PassResult``), one per file."""
from .base import Pass, PassError, PassResult
from .pipeline import PIPELINES, make_pipeline, run_pipeline

__all__ = ["Pass", "PassError", "PassResult", "PIPELINES", "make_pipeline", "run_pipeline"]

"""Passes: graph rewrites with a tiny contract (``run(graph) -> PassResult``), one per file."""
from .base import ContractError, Pass, PassError, PassResult
from .pipeline import PIPELINES, OrderError, make_pipeline, run_pipeline

__all__ = ["ContractError", "OrderError", "Pass", "PassError", "PassResult", "PIPELINES", "make_pipeline",
           "run_pipeline"]

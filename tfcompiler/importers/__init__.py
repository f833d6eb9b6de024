"""Importers: other frameworks' checkpoints -> a tfcompiler spec and canonical weights."""

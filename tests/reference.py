"""The NumPy paper references' public names, for the tests that import ``reference``: the
references themselves live one kind per module under tests/references/."""
from references import Reference, deberta_bucket, sinusoidal_table, t5_bucket  # noqa: F401

"""`tfc serve`: a compiled model behind HTTP JSON on Ray Serve, with dynamic batching and, for decoders,
streamed text generation and OpenAI's `/v1/completions`. Needs Ray Serve (`pip install "tfcompiler[serve]"`);
the rest of the runtime does not. `batching`, `protocol` and `decoding` are plain Python and NumPy; `app`
(the replicas) and `launch` (starting and stopping) import Ray."""
from .launch import Settings, serve_forever

__all__ = ["Settings", "serve_forever"]

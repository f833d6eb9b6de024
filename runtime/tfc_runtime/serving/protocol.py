"""The HTTP side of `tfc serve` that needs no Ray: request bodies read as JSON objects, and refusals as a status
with its reason — `{"error": {"message": ..., "type": ..., "code": status}}`, OpenAI's error shape, so one
client reads every route's errors. A bad request is the client's (4xx); it never reaches a model call."""
from __future__ import annotations

import json

import numpy as np

MAX_BODY_BYTES = 16 * 2 ** 20  # past this a body is refused before it is parsed (413)
KINDS = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
         413: "invalid_request_error", 415: "invalid_request_error", 500: "server_error", 503: "server_error",
         507: "server_error"}


class RequestError(Exception):
    """A request refused: its HTTP status and the reason, in words the client can act on."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason

    def body(self) -> dict:
        return error_body(self.status, self.reason)


def error_body(status: int, reason: str) -> dict:
    return {"error": {"message": reason, "type": KINDS.get(status, "invalid_request_error"), "code": status}}


def json_object(raw: bytes) -> dict:
    """The body as a JSON object, or a RequestError saying why not (too large, not UTF-8, not JSON, no object)."""
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, f"the body has {len(raw):,} bytes, over the server's {MAX_BODY_BYTES:,}")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8 text (send JSON)") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise RequestError(400, "the body's JSON is nested too deep") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object, got {type(body).__name__}")
    return body


def field(body: dict, name: str, kind: type | tuple, default=None, required: bool = False, where: str = ""):
    """``body[name]`` if it is of ``kind`` (bool is no number here), else the default or a RequestError."""
    if name not in body or body[name] is None:
        if required:
            raise RequestError(400, f"{where}missing field {name!r}")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join("number" if k is float else {int: "integer", str: "string", bool: "boolean",
                                                          list: "list", dict: "object"}.get(k, k.__name__)
                            for k in kinds)
        raise RequestError(400, f"{where}{name}: expected {names}, got {json.dumps(value)[:80]}")
    return value


def listed(outputs: dict[str, np.ndarray]) -> dict:
    """Outputs as nested lists: each float32 value becomes the Python float equal to it, so a client that reads
    it back as float32 has the model's value exactly."""
    return {name: value.tolist() for name, value in outputs.items()}

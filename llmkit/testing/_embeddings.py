"""Embeddings on the OpenAI (`/v1/embeddings`) and Gemini (`models/{model}:batchEmbedContents`) wire formats.

Vectors are deterministic unit vectors derived from the text (the same text and size give the same vector on both
wires), usage is the inputs' word count, and each provider's per-request limits are enforced with its own 400, so
tests see what packing does: OpenAI takes at most 2,048 inputs and 8,192 tokens per input
(https://platform.openai.com/docs/api-reference/embeddings/create); Gemini at most 100 requests per batch and 2,048
tokens per text (https://ai.google.dev/api/embeddings). An input containing `[[fail:STATUS]]` fails its request.
Gemini shapes: https://ai.google.dev/api/embeddings#method:-models.batchembedcontents.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from ._replies import parse_directives

__all__ = ["embed_body", "embed_problem", "vector"]

_LIMITS = {"openai": (2048, 8192), "gemini": (100, 2048)}  # (inputs per request, tokens per input)
_DEFAULT_DIMS = 16


def vector(text: str, dims: int) -> list[float]:
    """A unit vector of ``dims`` floats that depends only on ``text``."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [(seed[k % 32] + 13 * k) % 256 / 127.5 - 1.0 for k in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def _openai_texts(body: dict[str, Any]) -> list[str]:
    inputs = body.get("input")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    return [item if isinstance(item, str) else " ".join(map(str, item)) for item in inputs or []]


def _gemini_texts(body: dict[str, Any]) -> list[str]:
    return [
        " ".join(str(part.get("text", "")) for part in (request.get("content") or {}).get("parts") or [])
        for request in body.get("requests") or []
    ]


def _problem(wire: str, texts: list[str]) -> tuple[int, str] | None:
    """(status, message) of the refusal the real API gives this request, or None."""
    most_inputs, most_tokens = _LIMITS[wire]
    if len(texts) > most_inputs:
        if wire == "gemini":
            return 400, f"* BatchEmbedContentsRequest.requests: at most {most_inputs} requests can be in one batch\n"
        return 400, f"'$.input' is invalid: an array must have at most {most_inputs} items"
    for i, text in enumerate(texts):
        fail = parse_directives(text).fail
        if fail is not None:
            return fail[0], f"failed as requested by input {i}"
        if not text:
            return 400, f"'$.input' is invalid: input {i} is empty"
        if len(text.split()) > most_tokens:
            return 400, (
                f"This model's maximum context length is {most_tokens} tokens, however you requested "
                f"{len(text.split())} tokens in input {i}"
            )
    return None


def embed_problem(wire: str, body: dict[str, Any]) -> tuple[int, str] | None:
    """(status, message) of the refusal the real API gives this request on ``wire``, or None."""
    return _problem(wire, _texts(wire, body))


def _texts(wire: str, body: dict[str, Any]) -> list[str]:
    return _gemini_texts(body) if wire == "gemini" else _openai_texts(body)


def embed_body(wire: str, body: dict[str, Any]) -> dict[str, Any]:
    """The answer to an embeddings request on ``wire`` ("openai" or "gemini")."""
    texts = _texts(wire, body)
    tokens = sum(len(text.split()) for text in texts)
    if wire == "gemini":
        requests = body.get("requests") or [{}]
        dims = int(requests[0].get("outputDimensionality") or requests[0].get("output_dimensionality") or 0)
        vectors = [{"values": vector(text, dims or _DEFAULT_DIMS)} for text in texts]
        return {"embeddings": vectors, "usageMetadata": {"promptTokenCount": tokens}}
    dims = int(body.get("dimensions") or _DEFAULT_DIMS)
    data = []
    for i, text in enumerate(texts):
        values: Any = vector(text, dims)
        if body.get("encoding_format") == "base64":
            values = base64.b64encode(struct.pack(f"<{dims}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": values})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage}

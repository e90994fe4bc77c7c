"""A provider batch job on disk: its manifest (provider job ids and states, each line's outcome), written atomically,
and the status models ``BatchJob.status()`` returns. No I/O besides the files; ``_provider_batch`` drives it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["BatchStatus", "Manifest", "Part", "ProviderJobStatus", "split", "write_atomic"]

_FORMAT = "llmkit-provider-batch-1"


class ProviderJobStatus(BaseModel):
    """One provider job: its id (None until submitted), state and line counts."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    part: int
    provider_id: str | None
    state: str
    """prepared, submitting, submitted, collected or cancelled (llmkit's view)."""
    provider_status: str | None = None
    """The provider's own status (OpenAI's names; LiteLLM maps Anthropic's), when last polled."""
    total: int
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0


class BatchStatus(BaseModel):
    """Counts over every prompt of a provider batch, and per provider job."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    prompts: int
    cached: int
    """Prompts answered from the cache (or by an identical earlier prompt) and never submitted."""
    pending: int
    in_progress: int
    succeeded: int
    failed: int
    expired: int
    cancelled: int
    jobs: list[ProviderJobStatus]

    @property
    def done(self) -> bool:
        return self.pending == 0 and self.in_progress == 0


@dataclass
class Part:
    file: str
    lines: int
    state: str = "prepared"
    provider_id: str | None = None
    submitted_at: float | None = None
    provider_status: str | None = None
    done: int = 0
    outcome: dict[str, str] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Manifest:
    id: str
    model: str
    provider: str
    api_base: str | None
    prompts: int
    parts: list[Part]
    submitted: int = 0
    """Distinct prompts sent (the rest were cached or repeats); retried lines are not counted again."""
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "parts"}
        return {"format": _FORMAT, **data, "parts": [p.__dict__ for p in self.parts]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        fields = {k: v for k, v in data.items() if k not in ("format", "parts")}
        return cls(**fields, parts=[Part(**p) for p in data["parts"]])


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def split(lines: list[bytes], max_requests: int, max_bytes: int) -> list[list[bytes]]:
    """Consecutive runs of lines, each within the provider's per-job request and byte limits."""
    parts: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if parts[-1] and (len(parts[-1]) >= max_requests or size + len(line) > max_bytes):
            parts.append([])
            size = 0
        parts[-1].append(line)
        size += len(line)
    return [p for p in parts if p]

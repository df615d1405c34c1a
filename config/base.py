"""Common base for all settings models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Frozen, and unknown keys are an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

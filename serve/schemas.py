"""The JSON API's bodies (pydantic, strict: no type coercion, no unknown fields), as the OpenAPI page shows them.

Every text field of a request is refused when it looks like a path (a slash, a backslash, "..", a leading "~"
or a NUL): no field ever names a file, and such text is never a model, class or preset name either.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .settings import DEFAULT_PRESET

MAX_TEXT = 200  # characters of any text field
MAX_SEED = 2**32 - 1


def path_like(text: str) -> bool:
    """True for text that could name a file outside a plain name."""
    return any(c in text for c in ("/", "\\", "\x00")) or ".." in text or text.startswith("~")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JobRequest(Strict):
    """A recording to generate."""

    model: str = Field(max_length=MAX_TEXT, description="a model's name (GET /api/models)",
                       examples=["ctg-4hz"])
    length: str = Field(max_length=MAX_TEXT, description="mm:ss, h:mm:ss, 90s, 30min, 2h, or seconds",
                        examples=["10:00"])
    labels: dict[str, str] = Field(default_factory=dict, max_length=64,
                                   description="one class name per label of the model (its card lists them)")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="the same request and seed give the same file")
    preset: str = Field(default=DEFAULT_PRESET, max_length=MAX_TEXT, description="quality preset (sampler, steps)")

    @field_validator("model", "length", "preset")
    @classmethod
    def _no_path(cls, v: str) -> str:
        if path_like(v):
            raise ValueError("looks like a path (names only)")
        return v

    @field_validator("labels")
    @classmethod
    def _no_path_in_labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k, c in v.items():
            if len(k) > MAX_TEXT or len(c) > MAX_TEXT:
                raise ValueError(f"{k[:40]!r}: names are at most {MAX_TEXT} characters")
            if path_like(k) or path_like(c):
                raise ValueError(f"{k[:40]!r}: looks like a path (names only)")
        return v


class JobState(Strict):
    """A job as the client sees it; `files` and `preview` appear when it is done."""

    id: str
    state: Literal["queued", "running", "done", "failed"]
    progress: float = Field(description="0 to 1")
    error: Optional[str] = Field(default=None, description="why it failed (one line)")
    model: str
    seconds: float
    n_samples: int
    labels: dict[str, str]
    seed: int
    preset: str
    preview: Optional[str] = Field(default=None, description="URL of the preview PNG")
    files: dict[str, str] = Field(default_factory=dict, description="format -> download URL")
    expires_in_s: Optional[float] = Field(default=None, description="seconds until the files are deleted")


class ChannelCard(Strict):
    name: str
    unit: str
    range: list[float]


class LabelCard(Strict):
    name: str
    classes: list[str]


class TrainingFacts(Strict):
    step: int
    windows: int = Field(description="training windows (sum of the label distribution)")
    model_type: str
    size: str
    first_stage: str
    batch_size: Optional[int]
    manifest_sha256: str = Field(description="sha256 of the patient split manifest (no ids)")
    package_version: str


class ModelCard(Strict):
    name: str
    channels: list[ChannelCard]
    fs: float
    window_len: int
    window_seconds: float
    max_seconds: float = Field(description="the longest recording this model gives in this app")
    labels: list[LabelCard]
    training: TrainingFacts
    sha256: str


class PresetCard(Strict):
    name: str
    sampler: str
    steps: int
    description: str


class FormatCard(Strict):
    name: str
    suffix: str
    description: str


class Catalog(Strict):
    """GET /api/models: the model cards, and the presets and formats every model offers."""

    models: list[ModelCard]
    presets: list[PresetCard]
    default_preset: str
    formats: list[FormatCard]


class ErrorBody(Strict):
    detail: str = Field(description="one line: the field, then what is wrong")

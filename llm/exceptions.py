"""Errors raised by the llm app.

Each message names the bad value and what a person can do about it, because these strings end up in
task FAILED statuses and API error bodies that operators read.
"""

from __future__ import annotations


class LlmError(Exception):
    """Base class: anything the llm app raises on purpose."""


class GeneratorUnavailable(LlmError):
    """The model cannot be loaded (missing file, not downloaded, unknown backend, bad option)."""


class GenerationFailed(LlmError):
    """The model was loaded but producing an answer failed (server unreachable, timeout, runtime error)."""


class ContextOverflow(LlmError):
    """The prompt does not fit in the model's context window, even with nothing optional left in it."""


class TrainingDataInvalid(LlmError):
    """Adapter training cannot start: too few examples, or none that fits the model's context window."""

"""Choosing and holding the process's grounding scorer.

`scorer_build` makes a scorer by name (or dotted path to a class); `scorer_get` returns the one the
settings name, built once per process on first use, never at import, so web processes and
management commands that never score pay nothing.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from llm.grounding.types import GroundingError, GroundingScorer

DEFAULT_SCORER = "lexical-embedding"

_instance: GroundingScorer | None = None
_lock = threading.Lock()


def _lexical_embedding(**kwargs: object) -> GroundingScorer:
    from llm.grounding.scorers import LexicalEmbeddingScorer

    return LexicalEmbeddingScorer(**kwargs)  # type: ignore[arg-type]


def _llm_judge(**kwargs: object) -> GroundingScorer:
    from llm.grounding.judge import LlmJudgeScorer

    return LlmJudgeScorer(**kwargs)  # type: ignore[arg-type]


_BUILDERS: dict[str, Callable[..., GroundingScorer]] = {
    "lexical-embedding": _lexical_embedding,
    "llm-judge": _llm_judge,
}


def _import_class(dotted: str) -> Callable[..., GroundingScorer]:
    module_name, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise GroundingError(f"cannot import grounding scorer {dotted!r}: {exc}") from exc


def scorer_build(*, name: str, threshold: float | None = None, **options: object) -> GroundingScorer:
    """A new scorer; `name` is one of the built-in names or a dotted path to a scorer class."""
    if name in _BUILDERS:
        builder = _BUILDERS[name]
    elif "." in name:
        builder = _import_class(name)
    else:
        raise GroundingError(
            f"unknown grounding scorer {name!r}: use one of {sorted(_BUILDERS)} or a dotted class path"
        )
    try:
        return builder(threshold=threshold, **options)
    except TypeError as exc:
        raise GroundingError(f"bad GROUNDING_OPTIONS for scorer {name!r}: {exc}") from exc


def scorer_get() -> GroundingScorer:
    """The process's scorer, per settings GROUNDING_SCORER / GROUNDING_THRESHOLD / GROUNDING_OPTIONS.

    Built (not warmed up) on first call; thread-safe. The caller that scores calls `warm_up()`,
    or lets the first `score()` do it.
    """
    global _instance
    if _instance is not None:
        return _instance
    with _lock:
        if _instance is None:
            from django.conf import settings

            name = getattr(settings, "GROUNDING_SCORER", None) or DEFAULT_SCORER
            threshold = getattr(settings, "GROUNDING_THRESHOLD", None)
            options = dict(getattr(settings, "GROUNDING_OPTIONS", None) or {})
            _instance = scorer_build(name=str(name), threshold=threshold, **options)
        return _instance


def scorer_reset() -> None:
    """Forget the process's scorer (tests, or after changing settings)."""
    global _instance
    with _lock:
        _instance = None

"""The grounding scorer in use, through the component loader.

`scorer_get` returns the one settings.COMPONENTS["scorer"] names, built once per process on first use,
never at import, so web processes and management commands that never score pay nothing. `scorer_build`
makes a new one by name (settings.GROUNDING_SCORERS) or dotted class path.
"""

from __future__ import annotations

from llm.grounding.types import GroundingError, GroundingScorer
from ragsite.components import ComponentError, component, component_named


def scorer_build(*, name: str, threshold: float | None = None, **options: object) -> GroundingScorer:
    """A new scorer; `name` is one of settings.GROUNDING_SCORERS or a dotted path to a scorer class."""
    from django.conf import settings

    try:
        return component_named(name, settings.GROUNDING_SCORERS, what="grounding scorer", threshold=threshold, **options)  # type: ignore[no-any-return]
    except ComponentError as exc:
        raise GroundingError(f"{exc} (RAG_GROUNDING_SCORER, RAG_GROUNDING_OPTIONS)") from exc


def scorer_get() -> GroundingScorer:
    """The process's scorer, per settings RAG_GROUNDING_SCORER / _THRESHOLD / _OPTIONS (built, not warmed up)."""
    try:
        return component("scorer")  # type: ignore[no-any-return]
    except ComponentError as exc:
        raise GroundingError(f"{exc}: check RAG_GROUNDING_SCORER and RAG_GROUNDING_OPTIONS") from exc

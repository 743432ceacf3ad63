"""The generator in use, through the component loader.

`generator_get` is this process's generator (settings.COMPONENTS["generator"]), built once: a model is
gigabytes and must be loaded once per worker, not per task. `generator_build` makes a new one by backend
name or dotted class path (tests, benchmarks, a second generator beside the configured one). Backend
modules are imported only when chosen, so a web process never imports torch or llama.cpp.
"""

from __future__ import annotations

from typing import Any

from llm.exceptions import GeneratorUnavailable
from llm.generators.base import (
    ChatMessage,
    Extract,
    Extractor,
    GenerationParams,
    Generator,
    NumberedPassage,
    messages_fold_system,
)
from ragsite.components import ComponentError, component, component_at, component_named

__all__ = [
    "ChatMessage",
    "Extract",
    "Extractor",
    "GenerationParams",
    "Generator",
    "NumberedPassage",
    "extractor_get",
    "generator_build",
    "generator_get",
    "messages_fold_system",
]


def generator_build(*, backend: str, **options: Any) -> Generator:
    """Build (but do not load) a generator: `backend` is a name of settings.LLM_BACKENDS or a class's dotted
    path; options are the class's keyword arguments (RAG_LLM_OPTIONS)."""
    from django.conf import settings

    try:
        return component_named(backend, settings.LLM_BACKENDS, what="LLM backend", **options)  # type: ignore[no-any-return]
    except ComponentError as exc:
        raise GeneratorUnavailable(f"{exc} (RAG_LLM_BACKEND, RAG_LLM_OPTIONS)") from exc


def generator_get() -> Generator:
    """The process-wide generator chosen by settings, built on first use (not loaded: see warm_up)."""
    try:
        return component("generator")  # type: ignore[no-any-return]
    except ComponentError as exc:
        raise GeneratorUnavailable(f"{exc}: check RAG_LLM_BACKEND and RAG_LLM_OPTIONS") from exc


def extractor_get() -> Extractor:
    """This process's extractive generator, for the evidence under a flagged answer: the configured generator
    when it is the extractive one (one instance, one set of options), else one built beside it."""
    from django.conf import settings

    path = settings.LLM_BACKENDS["extractive"]
    try:
        if settings.COMPONENTS["generator"]["class"] == path:
            found = component("generator")
        else:
            found = component_at(path, **settings.EXTRACTIVE_OPTIONS)
    except ComponentError as exc:
        raise GeneratorUnavailable(f"{exc}: check RAG_EXTRACTIVE_OPTIONS") from exc
    if not isinstance(found, Extractor):
        raise GeneratorUnavailable(f"{path} cannot extract answers from passages")
    return found

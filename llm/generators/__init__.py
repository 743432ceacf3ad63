"""Choosing and caching the generator.

`generator_build` is a pure factory; `generator_get` is the one place that reads the Django settings
`LLM_BACKEND` and `LLM_OPTIONS` and keeps a single instance per process, because a model is gigabytes
and must be loaded once per worker, not per task. Backend modules are imported only when chosen, so a
web process that never calls these functions never imports torch or llama.cpp.
"""

from __future__ import annotations

import threading
from typing import Any

from llm.exceptions import GeneratorUnavailable
from llm.generators.base import ChatMessage, GenerationParams, Generator, messages_fold_system

__all__ = [
    "BACKENDS",
    "ChatMessage",
    "GenerationParams",
    "Generator",
    "generator_build",
    "generator_close",
    "generator_get",
    "generator_reset",
    "messages_fold_system",
]

BACKENDS = ("transformers", "llamacpp", "openai")

_lock = threading.Lock()
_instance: Generator | None = None


def generator_build(*, backend: str, **options: Any) -> Generator:
    """Build (but do not load) a generator; options are the backend class's keyword arguments."""
    if backend == "transformers":
        from llm.generators.hf import TransformersGenerator as cls
    elif backend == "llamacpp":
        from llm.generators.llamacpp import LlamaCppGenerator as cls  # type: ignore[assignment]
    elif backend == "openai":
        from llm.generators.openai_compat import OpenAICompatGenerator as cls  # type: ignore[assignment]
    else:
        raise GeneratorUnavailable(
            f"Unknown LLM backend {backend!r}: set LLM_BACKEND to one of {', '.join(BACKENDS)}."
        )
    try:
        return cls(**options)
    except TypeError as exc:
        # A misspelt key in LLM_OPTIONS would otherwise surface as a bare TypeError deep in a worker.
        raise GeneratorUnavailable(
            f"Bad LLM_OPTIONS for backend {backend!r} ({exc}): check the option names in "
            f"{cls.__module__}.{cls.__name__}."
        ) from exc


def generator_get() -> Generator:
    """The process-wide generator chosen by settings, built on first use (not loaded: see warm_up)."""
    global _instance
    if _instance is not None:
        return _instance
    with _lock:
        if _instance is None:
            from django.conf import settings

            backend = str(getattr(settings, "LLM_BACKEND", "llamacpp"))
            options = dict(getattr(settings, "LLM_OPTIONS", None) or {})
            if backend == "transformers":
                # Where `manage.py lora_train` saves adapters: the worker loads them at start.
                options.setdefault("adapters_dir", str(getattr(settings, "LLM_ADAPTERS_DIR", "")) or None)
            _instance = generator_build(backend=backend, **options)
        return _instance


def generator_reset() -> None:
    """Forget the cached generator (tests that change settings)."""
    global _instance
    with _lock:
        _instance = None


def generator_close() -> None:
    """Stop the process's generator threads, if it was built (a worker shutting down).

    transformers' continuous-batching thread is not a daemon: left running, it keeps a worker process
    alive after Celery's warm shutdown.
    """
    instance = _instance
    close = getattr(instance, "close", None)
    if close is not None:
        close()

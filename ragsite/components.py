"""The one loader for the service's pluggable parts (as Django's session engine: a dotted path in settings).

Each kind (embedder, generator, grounding scorer, grounding embedder, OCR engine, parsers) is named in
`settings.COMPONENTS` by the dotted path of a class and its keyword options. `component(kind)` builds it on
first use in the process that needs it, once, and keeps it: a model is loaded by the instance's idempotent
`warm_up()`, never at import and never by this module, so web processes and `migrate` pay nothing for
kinds they do not use. `shared(cls)` keeps one instance of a class that is not configurable (a cache of
loaded indexes) under the same lock and the same reset. `components_reset()` forgets every instance (tests
that change settings); `components_close()` stops their threads (a worker shutting down).

This module imports no app: classes are found by their dotted paths.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, TypeVar

from django.utils.module_loading import import_string

T = TypeVar("T")

# Constructors are cheap (they load nothing), but one may ask for another kind (a scorer for its embedder):
# re-entrant, so that nests instead of deadlocking.
_lock = threading.RLock()
_instances: dict[str, Any] = {}


class LoadsOnce:
    """A component whose `warm_up()` loads it once, whichever thread asks first (the others wait for it).

    Subclasses implement `_load()`; the flag is set only when it returns, so a load that raises is tried
    again by the next call.
    """

    _loaded = False

    def warm_up(self) -> None:
        if self._loaded:
            return
        # dict.setdefault is atomic: every thread gets the same lock, however many arrive at once.
        with self.__dict__.setdefault("_load_lock", threading.Lock()):
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError


class ComponentError(Exception):
    """A component cannot be built: unknown kind, a dotted path that does not import, or bad options."""


def component_class(path: str) -> type[Any]:
    try:
        found = import_string(path)
    except ImportError as exc:
        raise ComponentError(f"{path!r} cannot be imported ({exc}): check the dotted path in the settings") from exc
    if not isinstance(found, type):
        raise ComponentError(f"{path!r} is not a class")
    return found


def component_build(path: str, /, **options: Any) -> Any:
    """A new instance of the class at `path` with `options` (not cached, not warmed up)."""
    cls = component_class(path)
    try:
        return cls(**options)
    except TypeError as exc:
        # A misspelt option would otherwise surface as a bare TypeError deep in a worker.
        raise ComponentError(f"Bad options for {path} ({exc}): check the option names of {cls.__qualname__}") from exc


def component_named(value: str, names: Mapping[str, str], /, *, what: str, **options: Any) -> Any:
    """A new instance of a class given by one of `names` (name -> dotted path) or by its dotted path."""
    path = names.get(value, value)
    if "." not in path:
        raise ComponentError(f"Unknown {what} {value!r}: use one of {', '.join(names)} or a class's dotted path")
    return component_build(path, **options)


def _spec(kind: str) -> tuple[str, dict[str, Any]]:
    from django.conf import settings

    specs: Mapping[str, Mapping[str, Any]] = settings.COMPONENTS
    if kind not in specs:
        raise ComponentError(f"Unknown component kind {kind!r}: settings.COMPONENTS names {', '.join(sorted(specs))}")
    spec = specs[kind]
    return str(spec["class"]), dict(spec.get("options") or {})


def _cached(key: str, build: Any) -> Any:
    instance = _instances.get(key)
    if instance is not None:
        return instance
    with _lock:
        if key not in _instances:
            _instances[key] = build()
        return _instances[key]


def component(kind: str) -> Any:
    """This process's instance of `kind`, as settings.COMPONENTS[kind] describes it."""

    def build() -> Any:
        path, options = _spec(kind)
        return component_build(path, **options)

    return _cached(f"kind:{kind}", build)


def component_at(path: str, /, **options: Any) -> Any:
    """This process's instance of the class at `path` with these options (a second generator, say)."""
    key = f"path:{path}:{json.dumps(options, sort_keys=True, default=str)}"
    return _cached(key, lambda: component_build(path, **options))


def shared(cls: type[T]) -> T:
    """This process's one instance of `cls` (built without arguments)."""
    return _cached(f"class:{cls.__module__}.{cls.__qualname__}", cls)  # type: ignore[no-any-return]


def components_close() -> None:
    """Stop the threads of the instances built so far (transformers' batching thread is not a daemon)."""
    with _lock:
        instances = list(_instances.values())
    for instance in instances:
        close = getattr(instance, "close", None)
        if callable(close):
            close()


def components_reset() -> None:
    """Forget every instance: the next `component()` builds from the settings as they are now."""
    components_close()
    with _lock:
        _instances.clear()

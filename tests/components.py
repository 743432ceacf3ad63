"""Tests that choose a component: settings.COMPONENTS overridden for one kind, fresh instances around it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.test import override_settings

from ragsite.components import components_reset


@contextlib.contextmanager
def component_configured(kind: str, path: str | None = None, **options: Any) -> Iterator[None]:
    """settings.COMPONENTS[kind] with `path` (default: the configured class) and these options."""
    spec = {"class": path or settings.COMPONENTS[kind]["class"], "options": options}
    components_reset()
    try:
        with override_settings(COMPONENTS={**settings.COMPONENTS, kind: spec}):
            yield
    finally:
        components_reset()

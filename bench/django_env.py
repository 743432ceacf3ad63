"""Django in-process for the benchmarks that run our pipeline: a temporary SQLite DB and data dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_root: Path | None = None


def django_setup() -> Path:
    """Configure Django once on a fresh temporary data dir (SQLite, filesystem broker) and migrate."""
    global _root
    if _root is not None:
        return _root
    _root = Path(tempfile.mkdtemp(prefix="groundrag-bench-"))
    for name in ("DATABASE_URL", "REDIS_URL", "RAG_INDEX_DIR", "CELERY_TASK_ALWAYS_EAGER"):
        os.environ.pop(name, None)
    os.environ["RAG_DATA_DIR"] = str(_root)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "ragsite.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return _root

"""What the page header needs to know about the user's rights (a context processor, named in settings)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from ingestion.access import collections_editable


def access(request: HttpRequest) -> dict[str, object]:
    # Lazy: pages that do not draw the header (JSON, streams) never run the query.
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {"edits_documents": SimpleLazyObject(lambda: collections_editable(user=user).exists())}

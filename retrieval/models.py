"""Bookkeeping for the derived FAISS indexes; the vectors themselves live in ingestion.Chunk."""

from django.db import models


class IndexState(models.Model):
    """One row per collection. `version` names the index file readers must load; writers lock this row."""

    collection = models.OneToOneField("ingestion.Collection", on_delete=models.CASCADE, related_name="index_state")
    version = models.PositiveIntegerField(default=0)
    vector_count = models.PositiveIntegerField(default=0)
    dimension = models.PositiveIntegerField(default=0)
    factory = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"index of collection {self.collection_id} v{self.version} ({self.vector_count} vectors)"

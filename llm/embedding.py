"""The embedder Protocol every text embedder of the service satisfies: the chunk and query embedder
(ingestion.embedding.Embedder extends it with batching, progress and token counting) and the grounding
scorer's sentence embedders (llm.grounding.embedding)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class TextEmbedder(Protocol):
    def warm_up(self) -> None:
        """Load the model (idempotent)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, in order."""
        ...

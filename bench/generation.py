"""Generation speed: our generator service against the raw library, same model, prompt and settings.

CPU: llama.cpp with the bundled SmolLM2 GGUF, `LlamaCppGenerator.stream` against `llama_cpp.Llama`
directly. GPU: the 4-bit transformers path with a random-weight model shaped like Mistral-7B, against
`model.generate` on the same weights; it runs only where CUDA exists.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import Skipped, median, ratio

PASSAGE = (
    "Total net sales for the quarter were $81.8 billion, down 1 percent from the year-ago quarter. "
    "Products gross margin decreased due to weakness in foreign currencies and lower leverage, partially "
    "offset by cost savings. Services net sales increased due to higher advertising, cloud and App Store revenue. "
) * 4
QUESTION = "What happened to total net sales and gross margin this quarter? Answer in detail."


def _messages() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer only from the passages and cite them like [1]."},
        {"role": "user", "content": f"Passages:\n[1] {PASSAGE}\n\nQuestion: {QUESTION}"},
    ]


def _measure(pieces: Iterator[str], count: Callable[[str], int]) -> dict[str, float]:
    t0 = time.perf_counter()
    ttft = None
    parts = []
    for piece in pieces:
        if ttft is None:
            ttft = time.perf_counter() - t0
        parts.append(piece)
    total = time.perf_counter() - t0
    tokens = count("".join(parts))
    decode = max(total - (ttft or 0.0), 1e-9)
    return {"ttft_ms": (ttft or 0.0) * 1000, "tokens": tokens, "tokens_per_s": (tokens - 1) / decode, "total_s": total}


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    return {f"median_{key}": round(median([r[key] for r in rows]), 2) for key in rows[0]}


def llamacpp_bench(*, reps: int, max_tokens: int, log: Callable[[str], None]) -> dict[str, Any]:
    from llama_cpp import Llama

    from llm.generators import ChatMessage, GenerationParams, generator_build

    service = generator_build(backend="llamacpp")
    service.warm_up()
    raw = Llama(
        model_path=str(service._path), n_ctx=service.context_window, n_threads=service._n_threads,  # type: ignore[attr-defined]
        chat_format="chat_template.default", verbose=False,
    )

    def count(text: str) -> int:
        return len(raw.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0

    messages = _messages()
    ours_messages = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]  # type: ignore[arg-type]
    params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)

    def run_raw() -> Iterator[str]:
        stream: Any = raw.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens, temperature=0.0, top_p=0.95)  # type: ignore[arg-type]
        for chunk in stream:
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield str(piece)

    _measure(run_raw(), count)  # warm both: first calls pay page faults and buffer allocation
    _measure(service.stream(messages=ours_messages, params=params), count)
    rows: dict[str, list[dict[str, float]]] = {"raw": [], "ours": []}
    for rep in range(reps):
        order = ["raw", "ours"] if rep % 2 == 0 else ["ours", "raw"]
        for name in order:
            pieces = run_raw() if name == "raw" else service.stream(messages=ours_messages, params=params)
            rows[name].append(_measure(pieces, count))
    result: dict[str, Any] = {
        "model": service.model_name, "threads": service._n_threads, "reps": reps, "max_tokens": max_tokens,  # type: ignore[attr-defined]
        "raw": _summary(rows["raw"]), "ours": _summary(rows["ours"]),
    }
    result["tokens_per_s_ratio"] = ratio(result["ours"]["median_tokens_per_s"], result["raw"]["median_tokens_per_s"])
    result["ttft_ratio"] = ratio(result["ours"]["median_ttft_ms"], result["raw"]["median_ttft_ms"])
    log(f"  llama.cpp: ours {result['ours']} raw {result['raw']}")
    return result


def mistral_shaped_model(folder: str) -> None:
    """A random-weight Mistral-7B-shaped model (bf16) with a tokenizer that has a chat template, saved to folder."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from retrieval.embedding import bundled_model_path

    config = MistralConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, max_position_embeddings=32768, sliding_window=None,
    )
    with torch.device("cuda"):
        model: Any = MistralForCausalLM(config)
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    # Any tokenizer whose ids fit the vocabulary will do for a speed test: MiniLM's is bundled (30522 < 32000).
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    tokenizer.save_pretrained(folder)


def transformers_4bit_bench(*, reps: int, max_tokens: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The GPU default (nf4 4-bit via bitsandbytes): our TransformersGenerator against model.generate."""
    import torch

    if not torch.cuda.is_available():
        raise Skipped("no CUDA device here (torch.cuda.is_available() is False): run `python -m bench.run --only generation` on a GPU machine")
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TextIteratorStreamer

    from llm.generators import ChatMessage, GenerationParams, generator_build

    with tempfile.TemporaryDirectory(prefix="mistral-shaped-") as folder:
        mistral_shaped_model(folder)
        service = generator_build(backend="transformers", model=folder, quantization="nf4", local_files_only=True)
        service.warm_up()
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                                   bnb_4bit_use_double_quant=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        raw = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map="auto").eval()
        messages = _messages()
        ours_messages = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]  # type: ignore[arg-type]
        encoded: Any = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ids = encoded["input_ids"].to(raw.device)

        def run_raw() -> Iterator[str]:
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
            kwargs = {"input_ids": ids, "max_new_tokens": max_tokens, "min_new_tokens": max_tokens, "do_sample": False, "streamer": streamer}
            thread = threading.Thread(target=raw.generate, kwargs=kwargs)
            thread.start()
            yield from streamer
            thread.join()

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        # Random weights rarely stop early, but tokens/s is computed from what each produced anyway.
        params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)
        rows: dict[str, list[dict[str, float]]] = {"raw": [], "ours": []}
        _measure(run_raw(), count)
        _measure(service.stream(messages=ours_messages, params=params), count)
        for rep in range(reps):
            for name in (["raw", "ours"] if rep % 2 == 0 else ["ours", "raw"]):
                pieces = run_raw() if name == "raw" else service.stream(messages=ours_messages, params=params)
                rows[name].append(_measure(pieces, count))
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "reps": reps, "max_tokens": max_tokens,
                              "raw": _summary(rows["raw"]), "ours": _summary(rows["ours"])}
    result["tokens_per_s_ratio"] = ratio(result["ours"]["median_tokens_per_s"], result["raw"]["median_tokens_per_s"])
    log(f"  transformers 4-bit: {result}")
    return result

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
    """A random-weight Mistral-7B-shaped model (bf16) and a word-level tokenizer, saved to folder.

    Speed does not depend on weight values, so no download is needed. The tokenizer maps each word to one
    of the 32,000 ids (the prompt's words plus fillers), so prompt and answer lengths in tokens are exact.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    config = MistralConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, max_position_embeddings=32768, sliding_window=None, bos_token_id=1, eos_token_id=2,
    )
    with torch.device("cuda"):
        model: Any = MistralForCausalLM(config)
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    words = sorted(set(f"{PASSAGE} {QUESTION} {_SYSTEM}".replace(".", " ").replace(",", " ").split()))
    vocab = [*["<unk>", "<s>", "</s>"], *words]
    vocab += [f"w{i}" for i in range(32000 - len(vocab))]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    tokenizer.save_pretrained(folder)


_SYSTEM = "Answer only from the passages and cite them like [1]."


def _rag_messages(variant: int, passages: int = 7) -> list[dict[str, str]]:
    """A RAG prompt of about 1,400 tokens; `variant` rotates the passages so that concurrent questions do not
    share a prompt prefix (real questions retrieve different passages)."""
    order = [(variant + i) % passages for i in range(passages)]
    body = "\n".join(f"[{i + 1}] (part {k}) {PASSAGE}" for i, k in enumerate(order))
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": f"Passages:\n{body}\n\nQuestion: {QUESTION}"}]


def _concurrent(stream_one: Callable[[int], Iterator[str]], n: int, count: Callable[[str], int]) -> dict[str, float]:
    """n questions at once (one thread each); aggregate tokens/s over the wall time, medians per stream."""
    rows: list[dict[str, float]] = [{} for _ in range(n)]
    barrier = threading.Barrier(n + 1)

    def ask(i: int) -> None:
        barrier.wait()
        rows[i] = _measure(stream_one(i), count)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in rows)
    return {"questions": n, "wall_s": round(wall, 2), "tokens": tokens, "aggregate_tokens_per_s": round(tokens / wall, 1),
            "median_stream_tokens_per_s": round(median([r["tokens_per_s"] for r in rows]), 1),
            "median_ttft_ms": round(median([r["ttft_ms"] for r in rows]), 1),
            "max_ttft_ms": round(max(r["ttft_ms"] for r in rows), 1)}


def transformers_4bit_bench(*, reps: int, max_tokens: int, log: Callable[[str], None],
                            concurrency: tuple[int, ...] = (1, 8, 32), double_quant: bool = True) -> dict[str, Any]:
    """The GPU default (nf4 4-bit via bitsandbytes): our TransformersGenerator (continuous batching) against the
    raw library: plain `model.generate` (what most code does) and transformers' continuous-batching manager
    driven directly with the same settings (our service's own overhead)."""
    import torch

    if not torch.cuda.is_available():
        raise Skipped("no CUDA device here (torch.cuda.is_available() is False): run `python -m bench.generation --gpu` on a GPU machine and merge with `python -m bench.run --gpu-figures FILE`")
    import bitsandbytes
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TextIteratorStreamer

    from llm.generators import ChatMessage, GenerationParams, generator_build

    with tempfile.TemporaryDirectory(prefix="mistral-shaped-") as folder:
        t0 = time.perf_counter()
        mistral_shaped_model(folder)
        service: Any = generator_build(backend="transformers", model=folder, quantization="nf4", local_files_only=True,
                                       double_quant=double_quant)
        service.warm_up()  # loads, starts continuous batching and captures the first CUDA graphs
        load_s = time.perf_counter() - t0
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                                   bnb_4bit_use_double_quant=double_quant)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        raw = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map="cuda").eval()
        prompts = [_rag_messages(v) for v in range(max(concurrency))]
        encoded: list[Any] = [tokenizer.apply_chat_template(m, add_generation_prompt=True, return_dict=True) for m in prompts]
        ids = [list(e["input_ids"]) for e in encoded]
        params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        def run_ours(i: int) -> Iterator[str]:
            messages = [ChatMessage(role=m["role"], content=m["content"]) for m in prompts[i]]  # type: ignore[arg-type]
            return service.stream(messages=messages, params=params)

        def run_generate(i: int) -> Iterator[str]:
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
            input_ids = torch.tensor([ids[i]], device=raw.device)
            kwargs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "max_new_tokens": max_tokens,
                      "min_new_tokens": max_tokens, "do_sample": False, "streamer": streamer, "pad_token_id": tokenizer.eos_token_id}
            thread = threading.Thread(target=raw.generate, kwargs=kwargs)
            thread.start()
            yield from streamer
            thread.join()

        # transformers' continuous batching through its public API, with the library's defaults (CUDA graphs on,
        # per-request sampling so each request sets its own temperature): the library alone, no service.
        import copy

        from transformers import ContinuousBatchingConfig

        generation = copy.deepcopy(raw.generation_config)
        generation.update(do_sample=True, temperature=0.1, top_p=0.95)
        with torch.inference_mode():
            raw_cb = raw.init_continuous_batching(
                generation_config=generation,
                continuous_batching_config=ContinuousBatchingConfig(per_request_processors=True, use_cuda_graph=True),
            )
        raw_cb.start()

        def run_raw_cb(i: int) -> Iterator[str]:
            rid = raw_cb.add_request(ids[i], max_new_tokens=max_tokens, streaming=True, temperature=1e-3, top_p=1.0)
            seen = 0
            for out in raw_cb.request_id_iter(rid):
                new = out.generated_tokens[seen:]
                seen = len(out.generated_tokens)
                if new:
                    yield str(tokenizer.decode(new)) + " "

        single: dict[str, list[dict[str, float]]] = {"ours": [], "raw_generate": [], "raw_continuous_batching": []}
        runners = {"ours": run_ours, "raw_generate": run_generate, "raw_continuous_batching": run_raw_cb}
        for fn in runners.values():
            _measure(fn(0), count)  # warm: first calls capture graphs and allocate
        for rep in range(reps):
            names = list(runners) if rep % 2 == 0 else list(reversed(runners))
            for name in names:
                single[name].append(_measure(runners[name](rep % len(ids)), count))
            log(f"  gpu single rep {rep}: " + ", ".join(f"{n} {single[n][-1]['tokens_per_s']:.1f} tok/s" for n in names))
        result: dict[str, Any] = {
            "device": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__,
            "bitsandbytes": bitsandbytes.__version__, "reps": reps, "max_tokens": max_tokens,
            "prompt_tokens": len(ids[0]), "load_and_warm_s": round(load_s, 1),
            "gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1),
            "batching": service.batching, "quantization": service.quantization,
            "single": {name: _summary(rows) for name, rows in single.items()},
        }
        raw_cb.stop(block=True)
        raw_cb.destroy()
        torch.cuda.empty_cache()
        concurrent: dict[str, Any] = {}
        for n in concurrency:
            _concurrent(run_ours, n, count)  # warm: batch shapes not seen yet capture their graphs
            concurrent[str(n)] = _concurrent(run_ours, n, count)
            log(f"  gpu ours x{n}: {concurrent[str(n)]}")
        result["concurrent_ours"] = concurrent
        service._engine.stop()
    s = result["single"]
    result["tokens_per_s_ratio_vs_generate"] = ratio(s["ours"]["median_tokens_per_s"], s["raw_generate"]["median_tokens_per_s"])
    result["tokens_per_s_ratio_vs_raw_cb"] = ratio(s["ours"]["median_tokens_per_s"], s["raw_continuous_batching"]["median_tokens_per_s"])
    result["single_stream_target"] = 60.0  # 2x the ~30 tokens/s bitsandbytes publishes for NF4 8B on an H100
    log(f"  transformers 4-bit: {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.generation --gpu --out FILE`: only the GPU benchmark (no Django, no database), for a GPU
    machine; `python -m bench.run --gpu-figures FILE` puts its figures into the report."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m bench.generation", description=main.__doc__)
    parser.add_argument("--gpu", action="store_true", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--no-double-quant", action="store_true", help="NF4 without quantizing the quantization constants")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    figures = transformers_4bit_bench(reps=args.reps, max_tokens=args.max_tokens, log=log, double_quant=not args.no_double_quant)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

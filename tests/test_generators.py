"""Generators: the factory, the shared helpers, and each backend against a real model or server."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.conf import settings
from jinja2 import TemplateError

from llm.exceptions import ContextOverflow, GenerationFailed, GeneratorUnavailable
from llm.generators import (
    ChatMessage,
    GenerationParams,
    Generator,
    generator_build,
    generator_get,
    messages_fold_system,
)
from llm.generators.base import pieces_cut_at_stop
from ragsite.components import components_reset
from tests.components import component_configured
from tests.llm_fixtures import (
    MISTRAL_CHAT_TEMPLATE,
    free_port,
    gguf_with_chat_template,
    llama_server,
    smollm2_gguf_path,
    tiny_mistral_build,
)

QUESTION = [
    ChatMessage(role="system", content="answer using only the passages"),
    ChatMessage(role="user", content="what does the travel policy say about hotels"),
]
GREEDY = GenerationParams(max_new_tokens=12, temperature=0)


# Factory and shared helpers ---------------------------------------------------------------------------


def test_build_unknown_backend_names_the_choices() -> None:
    with pytest.raises(GeneratorUnavailable, match="'vllm'.*transformers, llamacpp, openai"):
        generator_build(backend="vllm")


def test_build_misspelt_option_is_reported_not_a_type_error() -> None:
    with pytest.raises(GeneratorUnavailable, match="n_ctxx"):
        generator_build(backend="llamacpp", n_ctxx=512)


def test_build_and_describe_without_loading_the_model(tmp_path) -> None:
    generator: Any = generator_build(backend="llamacpp")
    assert isinstance(generator_build(backend="llamacpp"), Generator)
    # Read from the GGUF header: a web process may show these without loading the model.
    assert (generator.quantization, generator.context_window) == ("gguf Q4_1", 4096)
    assert generator._llm is None
    missing = generator_build(backend="llamacpp", model_path=str(tmp_path / "missing.gguf"))
    with pytest.raises(GeneratorUnavailable, match="missing.gguf"):
        missing.warm_up()


def test_get_reads_settings_and_keeps_one_instance_across_threads() -> None:
    options = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "context_window": 1234}
    with component_configured("generator", settings.LLM_BACKENDS["openai"], **options):
        seen: list[Generator] = []
        threads = [threading.Thread(target=lambda: seen.append(generator_get())) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(g) for g in seen}) == 1
        assert seen[0].backend == "openai" and seen[0].context_window == 1234
        components_reset()
        assert generator_get() is not seen[0]


def test_fold_system_into_first_user_message() -> None:
    folded = messages_fold_system(
        [
            ChatMessage(role="system", content="rules"),
            ChatMessage(role="user", content="q1"),
            ChatMessage(role="assistant", content="a1"),
            ChatMessage(role="user", content="q2"),
        ]
    )
    assert [m.role for m in folded] == ["user", "assistant", "user"]
    assert folded[0].content == "rules\n\nq1" and folded[2].content == "q2"
    assert messages_fold_system([ChatMessage(role="system", content="only")]) == (
        ChatMessage(role="user", content="only"),
    )


def test_cut_at_stop_across_pieces_and_closes_the_source() -> None:
    closed = []

    def source():
        try:
            yield from ["Hello wor", "ld. EN", "D more", " never"]
        finally:
            closed.append(True)

    assert "".join(pieces_cut_at_stop(source(), ["END"])) == "Hello world. "
    assert closed == [True]
    # A held-back prefix that turns out not to be the stop string is released.
    assert "".join(pieces_cut_at_stop(iter(["a E", "Nx b"]), ["END"])) == "a ENx b"
    assert list(pieces_cut_at_stop(iter(["x", "y"]), [])) == ["x", "y"]


# transformers: a tiny random Mistral, quantized to NF4 on the CPU ---------------------------------------


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-mistral")
    # Special tokens suppressed: the random model never ends early, so every run reaches the limit.
    endless = tiny_mistral_build(root / "endless", generation={"suppress_tokens": [0, 1, 2, 3]})
    # A steep length penalty makes end-of-sequence win a few tokens in.
    ending = tiny_mistral_build(root / "ending", generation={"exponential_decay_length_penalty": (2, 1000.0)})
    return endless, ending


@pytest.fixture(scope="module")
def tiny_hf(tiny_dirs):
    started = time.monotonic()
    generator = generator_build(backend="transformers", model=str(tiny_dirs[0]), local_files_only=True)
    generator.warm_up()
    logging.getLogger(__name__).info("event=tiny_mistral_nf4_loaded seconds=%.2f", time.monotonic() - started)
    return generator


@pytest.mark.slow
def test_transformers_loads_nf4_4bit_linear_layers(tiny_hf) -> None:
    import bitsandbytes as bnb

    layer = tiny_hf._model.model.layers[0]
    for linear in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.mlp.down_proj):
        assert isinstance(linear, bnb.nn.Linear4bit)
        weight: Any = linear.weight  # a bnb Params4bit
        assert weight.quant_type == "nf4"
        assert weight.quant_state.nested  # double quantization
    assert layer.self_attn.k_proj.out_features == 32  # GQA: 2 kv heads x 16, half of the 4 query heads
    assert tiny_hf.quantization == "nf4-4bit (bnb, bf16 compute, double-quant)"
    assert tiny_hf.context_window == 256  # the sliding window, smaller than max_position_embeddings
    tiny_hf.warm_up()  # idempotent
    assert tiny_hf._model.model.layers[0] is layer


@pytest.mark.slow
def test_transformers_streams_pieces_and_stops_at_max_new_tokens(tiny_hf) -> None:
    pieces = list(tiny_hf.stream(messages=QUESTION, params=GREEDY))
    assert len(pieces) >= 3
    text = "".join(pieces)
    assert len(tiny_hf._tokenizer(text, add_special_tokens=False)["input_ids"]) == GREEDY.max_new_tokens
    # Greedy decoding is deterministic.
    assert "".join(tiny_hf.stream(messages=QUESTION, params=GREEDY)) == text


@pytest.mark.slow
def test_transformers_count_tokens_matches_the_chat_template(tiny_hf) -> None:
    tokenizer = tiny_hf._tokenizer
    as_dicts = [{"role": m.role, "content": m.content} for m in QUESTION]
    with pytest.raises(TemplateError):  # Mistral's template rejects the system role...
        tokenizer.apply_chat_template(as_dicts)
    folded = [{"role": m.role, "content": m.content} for m in messages_fold_system(QUESTION)]
    expected = tokenizer.apply_chat_template(folded, add_generation_prompt=True)["input_ids"]
    assert tiny_hf.count_tokens(QUESTION) == len(expected)  # ...so the system text is folded in
    longer = [*QUESTION[:1], ChatMessage(role="user", content=QUESTION[1].content + " and meals")]
    assert tiny_hf.count_tokens(longer) == len(expected) + 2


@pytest.mark.slow
def test_transformers_stop_string_ends_the_answer(tiny_hf) -> None:
    text = "".join(tiny_hf.stream(messages=QUESTION, params=GREEDY))
    stop = text.split()[4]
    cut = "".join(
        tiny_hf.stream(
            messages=QUESTION, params=GenerationParams(max_new_tokens=12, temperature=0, stop=(stop,))
        )
    )
    assert cut == text[: text.index(stop)]


@pytest.mark.slow
def test_transformers_closing_early_ends_the_generation_thread(tiny_hf) -> None:
    stream = tiny_hf.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=200, temperature=0))
    assert next(stream) and next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "hf-generate"]


@pytest.mark.slow
def test_transformers_stops_at_end_of_sequence(tiny_dirs) -> None:
    generator = generator_build(backend="transformers", model=str(tiny_dirs[1]), local_files_only=True)
    text = "".join(
        generator.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=40, temperature=0))
    )
    produced = len(text.split())
    assert 1 <= produced < 10
    assert "</s>" not in text


@pytest.mark.slow
def test_transformers_sampling_with_full_precision(tiny_dirs) -> None:
    generator: Any = generator_build(
        backend="transformers", model=str(tiny_dirs[0]), quantization="none", local_files_only=True
    )
    text = "".join(
        generator.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=6, temperature=0.8))
    )
    assert len(text.split()) == 6
    assert generator.quantization == "none (float32)"
    assert type(generator._model.model.layers[0].self_attn.q_proj).__name__ == "Linear"


@pytest.fixture(scope="module")
def tiny_batched(tiny_dirs):
    """The same NF4 model behind transformers' continuous batching (on the CPU: no CUDA graphs)."""
    generator: Any = generator_build(
        backend="transformers", model=str(tiny_dirs[0]), local_files_only=True, batching="continuous"
    )
    generator.warm_up()
    yield generator
    generator._engine.stop()


def _question(topic: str) -> list[ChatMessage]:
    return [QUESTION[0], ChatMessage(role="user", content=f"what does the travel policy say about {topic}")]


@pytest.mark.slow
def test_batched_streams_and_greedy_is_deterministic(tiny_batched) -> None:
    assert tiny_batched.batching == "continuous"
    pieces = list(tiny_batched.stream(messages=QUESTION, params=GREEDY))
    text = "".join(pieces)
    assert len(pieces) >= 2
    produced = len(tiny_batched._tokenizer(text, add_special_tokens=False)["input_ids"])
    assert 1 <= produced <= GREEDY.max_new_tokens
    assert "</s>" not in text
    assert "".join(tiny_batched.stream(messages=QUESTION, params=GREEDY)) == text


@pytest.mark.slow
def test_batched_concurrent_questions_each_get_their_own_answer(tiny_batched) -> None:
    """Eight threads ask at once, each with its own token limit: every stream must end at its own limit.

    The model never emits end-of-sequence (its special tokens are suppressed), so lengths are exact and a
    stream that received a neighbour's tokens would show a wrong length. Texts are compared with asking
    alone too, but only in aggregate: a batched forward pass rounds differently from a single one, and
    the near-tied logits of a random model sometimes flip a later token.
    """
    topics = ["hotels", "meals", "receipts", "flights", "taxis", "mileage", "approval", "refunds"]
    limits = {t: 4 + i for i, t in enumerate(topics)}

    def ask_one(topic: str) -> str:
        params = GenerationParams(max_new_tokens=limits[topic], temperature=0)
        return "".join(tiny_batched.stream(messages=_question(topic), params=params))

    alone = {t: ask_one(t) for t in topics}
    together: dict[str, str] = {}
    barrier = threading.Barrier(len(topics))

    def ask(topic: str) -> None:
        barrier.wait()
        together[topic] = ask_one(topic)

    threads = [threading.Thread(target=ask, args=(t,)) for t in topics]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    tokenizer = tiny_batched._tokenizer
    for topic in topics:
        for text in (alone[topic], together[topic]):
            assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == limits[topic], (topic, text)
    assert sum(together[t] == alone[t] for t in topics) >= len(topics) // 2, (together, alone)
    assert not tiny_batched._engine._requests  # every request unregistered


@pytest.mark.slow
def test_batched_closing_early_cancels_and_the_engine_goes_on(tiny_batched) -> None:
    stream = tiny_batched.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=150, temperature=0))
    assert next(stream)
    stream.close()
    assert not tiny_batched._engine._requests
    text = "".join(tiny_batched.stream(messages=_question("meals"), params=GenerationParams(max_new_tokens=5, temperature=0.7)))
    assert 1 <= len(text.split()) <= 5


@pytest.mark.slow
def test_batched_stop_string_and_context_overflow(tiny_batched) -> None:
    text = "".join(tiny_batched.stream(messages=QUESTION, params=GREEDY))
    words = text.split()
    stop = next(w for w in words[1:] if w != words[0])
    cut = "".join(tiny_batched.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=12, temperature=0, stop=(stop,))))
    assert cut == text[: text.index(stop)]
    huge = [ChatMessage(role="user", content="hotel " * 400)]
    with pytest.raises(ContextOverflow):
        tiny_batched.stream(messages=huge, params=GREEDY)


def test_batching_option_is_checked() -> None:
    with pytest.raises(GeneratorUnavailable, match="batching"):
        generator_build(backend="transformers", batching="sometimes")
    with pytest.raises(GeneratorUnavailable, match="batching_options"):
        generator_build(backend="transformers", batching_options={"kv_pading": 256})


def test_transformers_missing_model_says_what_to_do(tmp_path) -> None:
    generator = generator_build(
        backend="transformers", model=str(tmp_path / "no-such-model"), local_files_only=True
    )
    with pytest.raises(GeneratorUnavailable, match="no-such-model.*local directory"):
        generator.warm_up()


# llama.cpp: the bundled SmolLM2 GGUF -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm():
    return generator_build(backend="llamacpp")


@pytest.mark.slow
def test_llamacpp_warm_up_is_idempotent(smollm, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="llm.generators.llamacpp"):
        smollm.warm_up()
        smollm.warm_up()
    assert sum("generator_loaded" in r.getMessage() for r in caplog.records) <= 1
    loaded = smollm._llm
    smollm.warm_up()
    assert smollm._llm is loaded
    assert smollm.model_name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert smollm.quantization == "gguf Q4_1"
    assert smollm.context_window == 4096  # the default, below the model's trained 8192


@pytest.mark.slow
def test_llamacpp_streams_a_short_answer(smollm) -> None:
    messages = [ChatMessage(role="user", content="What is the capital of France? Answer in one word.")]
    pieces = list(smollm.stream(messages=messages, params=GenerationParams(max_new_tokens=16, temperature=0)))
    assert 2 <= len(pieces) <= 16  # one piece per token
    assert "Paris" in "".join(pieces)


@pytest.mark.slow
def test_llamacpp_count_tokens_is_exact_and_grows(smollm) -> None:
    short = smollm.count_tokens([ChatMessage(role="user", content="hello")])
    longer = smollm.count_tokens([ChatMessage(role="user", content="hello " * 50)])
    assert 0 < short < longer
    chat = [{"role": m.role, "content": m.content} for m in QUESTION]
    usage = smollm._llm.create_chat_completion(messages=chat, max_tokens=1)["usage"]
    assert smollm.count_tokens(QUESTION) == usage["prompt_tokens"]


@pytest.mark.slow
def test_llamacpp_prompt_longer_than_the_window_is_a_context_overflow() -> None:
    generator = generator_build(backend="llamacpp", n_ctx=128)
    assert generator.context_window == 128
    long = [ChatMessage(role="user", content="the travel policy " * 100)]
    with pytest.raises(ContextOverflow, match="context window"):
        list(generator.stream(messages=long, params=GREEDY))


@pytest.mark.slow
def test_llamacpp_template_without_system_role_gets_it_folded(tmp_path) -> None:
    path = gguf_with_chat_template(
        smollm2_gguf_path(), tmp_path / "mistral-template.gguf", MISTRAL_CHAT_TEMPLATE
    )
    generator = generator_build(backend="llamacpp", model_path=str(path), n_ctx=512)
    # Mistral's template raises on a system message: the rules travel in the first user turn instead.
    assert generator.count_tokens(QUESTION) == generator.count_tokens(messages_fold_system(QUESTION))
    # Unfolded, rendering would raise "Conversation roles must alternate" here.
    assert len(list(generator.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=4)))) <= 4


# OpenAI-compatible server: llama_cpp.server in a real process --------------------------------------------


@pytest.fixture(scope="module")
def server_url():
    with llama_server() as url:
        yield url


@pytest.mark.slow
def test_openai_streams_from_a_real_server(server_url) -> None:
    generator = generator_build(backend="openai", base_url=server_url, context_window=2048)
    messages = [ChatMessage(role="user", content="What is the capital of France? Answer in one word.")]
    pieces = list(
        generator.stream(messages=messages, params=GenerationParams(max_new_tokens=16, temperature=0))
    )
    assert len(pieces) >= 2 and "Paris" in "".join(pieces)
    assert generator.model_name == "smollm2"  # learnt from /v1/models
    assert generator.quantization == "remote" and generator.context_window == 2048


@pytest.mark.slow
def test_openai_count_tokens_estimate_errs_high(server_url, smollm) -> None:
    generator = generator_build(backend="openai", base_url=server_url, model="smollm2")
    estimate = generator.count_tokens(QUESTION)
    exact = smollm.count_tokens(QUESTION)
    assert exact <= estimate <= 2 * exact


@pytest.mark.slow
def test_openai_count_tokens_with_a_local_tokenizer_is_exact(tiny_dirs, tiny_hf) -> None:
    generator = generator_build(backend="openai", model="tiny", tokenizer=str(tiny_dirs[0]))
    assert generator.count_tokens(QUESTION) == tiny_hf.count_tokens(QUESTION)


def test_openai_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    generator = generator_build(backend="openai", base_url=url, model="m", connect_timeout=2.0)
    with pytest.raises(GenerationFailed, match=f"Cannot reach the model server at {url}"):
        list(generator.stream(messages=QUESTION, params=GREEDY))


@pytest.mark.gpu
def test_nf4_on_a_gpu_batches_with_cuda_graphs_and_streams(tiny_dirs) -> None:
    """The GPU worker's configuration: 4-bit weights on CUDA, continuous batching with CUDA graphs."""
    generator: Any = generator_build(backend="transformers", model=str(tiny_dirs[0]), local_files_only=True)
    generator.warm_up()
    try:
        assert generator.batching == "continuous" and generator.quantization.startswith("nf4")
        assert generator._engine.config.get("use_cuda_graph") is True
        params = GenerationParams(max_new_tokens=8, temperature=0.0)
        pieces = list(generator.stream(messages=[ChatMessage("user", "the travel policy covers")], params=params))
        assert pieces and all(isinstance(p, str) for p in pieces)
    finally:
        generator.close()

"""Mixtral (sparse mixture of experts) through the transformers backend, 4-bit: a tiny random-weight
MixtralForCausalLM, made on the spot, generates and streams, with its experts stored as NF4 too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm.generators import ChatMessage, GenerationParams, generator_build
from tests.llm_fixtures import tiny_mixtral_build

pytestmark = pytest.mark.slow

QUESTION = [
    ChatMessage(role="system", content="answer using only the passages"),
    ChatMessage(role="user", content="what does the travel policy say about hotels"),
]
GREEDY = GenerationParams(max_new_tokens=10, temperature=0)


@pytest.fixture(scope="module")
def tiny_mixtral(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Special tokens suppressed: every answer reaches its token limit.
    return tiny_mixtral_build(tmp_path_factory.mktemp("tiny-mixtral") / "model", generation={"suppress_tokens": [0, 1, 2, 3]})


def test_tiny_mixtral_in_4bit_generates_and_streams(tiny_mixtral: Path) -> None:
    import bitsandbytes as bnb

    generator: Any = generator_build(backend="transformers", model=str(tiny_mixtral), local_files_only=True)
    pieces = list(generator.stream(messages=QUESTION, params=GREEDY))
    model = generator.loaded_model
    assert type(model).__name__ == "MixtralForCausalLM"
    layer = model.model.layers[0]
    assert isinstance(layer.self_attn.q_proj, bnb.nn.Linear4bit)
    # The experts (fused 3-D parameters, most of Mixtral's weights) are stored as NF4 as well.
    experts = layer.mlp.experts
    stored = experts.parametrizations.gate_up_proj.original
    assert stored.dtype.itemsize == 1 and stored.numel() * 2 == experts.gate_up_proj.numel()
    assert experts.gate_up_proj.shape == (4, 2 * 96, 64)  # read back dequantized, per expert
    assert generator.quantization == "nf4-4bit (bnb, bf16 compute, double-quant, experts nf4)"
    assert len(pieces) >= 3  # streamed piece by piece
    text = "".join(pieces)
    assert len(generator.tokenizer(text, add_special_tokens=False)["input_ids"]) == GREEDY.max_new_tokens
    assert "".join(generator.stream(messages=QUESTION, params=GREEDY)) == text  # greedy is deterministic


def test_tiny_mixtral_streams_through_continuous_batching(tiny_mixtral: Path) -> None:
    generator: Any = generator_build(
        backend="transformers", model=str(tiny_mixtral), local_files_only=True, batching="continuous"
    )
    generator.warm_up()
    try:
        pieces = list(generator.stream(messages=QUESTION, params=GREEDY))
        assert generator.batching == "continuous" and len(pieces) >= 3
        assert len(generator.tokenizer("".join(pieces), add_special_tokens=False)["input_ids"]) == GREEDY.max_new_tokens
    finally:
        generator.close()

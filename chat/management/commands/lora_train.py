import sys
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from chat.reports import since_parse
from chat.training import feedback_examples
from ingestion.models import Collection
from llm.exceptions import LlmError
from llm.generators import generator_build
from llm.generators.hf import TransformersGenerator
from llm.lora import LoraOptions, lora_train

# Serving-only options of the transformers backend: training loads the bare base model.
_SERVING_ONLY = ("adapters", "adapters_dir", "batching", "batching_options")


class Command(BaseCommand):
    help = (
        "Train a LoRA adapter for a collection from its thumbs-up answers that grounding did not flag "
        "(QLoRA on the 4-bit base model the gpu worker serves), and save it where the worker loads adapters."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = LoraOptions()
        parser.add_argument("--collection", required=True, help="collection slug")
        parser.add_argument("--since", default="90d", help="answers from this period before now: 24h, 90d, 12w")
        parser.add_argument("--name", help="adapter name (default: the collection slug)")
        parser.add_argument("--model", help="base model id or path (default: RAG_LLM_OPTIONS 'model')")
        parser.add_argument("--rank", type=int, default=defaults.rank)
        parser.add_argument("--alpha", type=int, default=defaults.alpha)
        parser.add_argument("--dropout", type=float, default=defaults.dropout)
        parser.add_argument("--target-modules", default=",".join(defaults.target_modules), help="comma-separated")
        parser.add_argument("--steps", type=int, default=defaults.steps)
        parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--held-out", type=float, default=defaults.held_out, help="share kept out to measure loss")
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--no-gradient-checkpointing", action="store_true", help="faster, more GPU memory")
        parser.add_argument("--assign", action="store_true", help="make the collection answer with the new adapter")

    def handle(self, *args: Any, **options: Any) -> None:
        collection = Collection.objects.filter(slug=options["collection"]).first()
        if collection is None:
            raise CommandError(f"No collection with slug {options['collection']!r}: see `manage.py search --help`")
        try:
            since = since_parse(options["since"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        examples = feedback_examples(collection=collection, since=since)
        self.stdout.write(f"{len(examples)} approved answers in {collection.slug} since {since:%Y-%m-%d}")
        name = options["name"] or collection.slug
        output = settings.LLM_ADAPTERS_DIR / name
        train_options = LoraOptions(
            rank=options["rank"], alpha=options["alpha"], dropout=options["dropout"],
            target_modules=tuple(m.strip() for m in options["target_modules"].split(",") if m.strip()),
            steps=options["steps"], learning_rate=options["learning_rate"], batch_size=options["batch_size"],
            held_out=options["held_out"], seed=options["seed"], max_new_tokens=settings.LLM_MAX_NEW_TOKENS,
            guardrail=settings.LLM_GUARDRAIL, gradient_checkpointing=not options["no_gradient_checkpointing"],
        )
        bar = tqdm(total=train_options.steps, desc=f"training {name}", unit="step", file=sys.stderr)

        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

        try:
            generator = generator_build(backend="transformers", **self._model_options(options["model"]))
            assert isinstance(generator, TransformersGenerator)
            result = lora_train(
                generator=generator, examples=examples, output=output, options=train_options, on_step=on_step,
            )
        except LlmError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(
            f"examples: {result.train_examples} trained on, {result.held_out_examples} held out; "
            f"{result.answer_tokens} answer tokens; {result.steps} steps in {result.seconds:.1f} s\n"
            f"held-out loss: before {result.loss_before:.4f}, after {result.loss_after:.4f}\n"
            f"saved adapter {name!r} to {output}"
        )
        if options["assign"]:
            Collection.objects.filter(id=collection.id).update(adapter=name)
            self.stdout.write(f"collection {collection.slug} now answers with adapter {name!r}")
        self.stdout.write("Restart the gpu worker to load it.")

    def _model_options(self, model: str | None) -> dict[str, Any]:
        spec = settings.COMPONENTS["generator"]
        served = dict(spec["options"]) if spec["class"] == settings.LLM_BACKENDS["transformers"] else {}
        if model is None and "model" not in served:
            raise CommandError(
                f"Which base model? The gpu worker does not serve a transformers model ({spec['class']}): "
                "pass --model, or set RAG_LLM_BACKEND=transformers and its model "
                "in RAG_LLM_OPTIONS. An adapter only works on the base model it was trained on."
            )
        options = {k: v for k, v in served.items() if k not in _SERVING_ONLY}
        if model is not None:
            options["model"] = model
        return {**options, "batching": "off"}

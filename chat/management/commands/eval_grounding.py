import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from llm.grounding import scorer_get
from llm.grounding.evaluation import grounding_evaluate, ragtruth_load


class Command(BaseCommand):
    help = (
        "Score labeled RAG answers (RAGTruth JSONL format) with the configured grounding scorer and print "
        "response-level precision, recall, F1 and balanced accuracy, per model and overall, plus time per answer."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--task", choices=["qa", "summary", "data2txt", "all"], default="all")
        parser.add_argument("--limit", type=int, default=0, help="score only the first N responses")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} does not exist: pass a RAGTruth-format .jsonl file")
        try:
            items = ragtruth_load(path=path)
        except (ValueError, KeyError) as exc:
            raise CommandError(f"{path} is not in RAGTruth format ({exc})") from exc
        if options["task"] != "all":
            items = [i for i in items if i.task == options["task"]]
        if options["limit"]:
            items = items[: options["limit"]]
        if not items:
            raise CommandError(f"No responses to score in {path}")
        with tqdm(total=len(items), unit="answer", desc="scoring", file=sys.stderr) as bar:
            report = grounding_evaluate(
                scorer=scorer_get(), items=items, progress=lambda done, total: bar.update(done - bar.n)
            )
        self.stdout.write(report.to_text())

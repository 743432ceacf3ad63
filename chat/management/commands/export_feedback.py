"""Answers with their feedback as JSONL, for evaluation sets or fine-tuning: question, the passages the model
was given (as it saw them), answer, grounding score and the thumbs and comment it got."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from chat.feedback import THUMBS_CHOICES, FeedbackFilter, feedback_records
from chat.reports import since_parse


class Command(BaseCommand):
    help = "Write answers and their feedback as JSON lines (one answer per line), oldest first"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--since", default="30d", help="period before now: 24h, 30d, 2w (default 30d)")
        parser.add_argument("--collection", metavar="SLUG", default="")
        parser.add_argument(
            "--thumbs", choices=[k for k in THUMBS_CHOICES if k], default="rated",
            help="which answers: rated (default, thumbs up or down), up, down, unrated",
        )
        parser.add_argument("--all", action="store_true", help="every finished answer, rated or not")
        parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since = since_parse(options["since"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        filters = FeedbackFilter(
            collection=options["collection"], thumbs="" if options["all"] else options["thumbs"], since=since
        )
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                count = self._write(out, filters)
        else:
            count = self._write(self.stdout, filters)
        self.stderr.write(f"exported={count} since={since.isoformat()}")

    def _write(self, out: IO[str] | OutputWrapper, filters: FeedbackFilter) -> int:
        count = 0
        for record in feedback_records(filters=filters):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count

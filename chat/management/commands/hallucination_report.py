from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from chat import reports


class Command(BaseCommand):
    help = "Print the share of model answers flagged as not grounded, per day, collection and backend."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--since", default="7d", help="period before now: 24h, 7d, 4w (default 7d)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since = reports.since_parse(options["since"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        total = reports.hallucination_rates(since=since, by_day=False, by_collection=False, by_backend=False)
        if not total:
            self.stdout.write(f"No scored answers since {since:%Y-%m-%d %H:%M} UTC.")
            return
        t = total[0]
        self.stdout.write(
            f"Since {since:%Y-%m-%d %H:%M} UTC: {t.flagged}/{t.answers} answers flagged = {t.rate:.1%} "
            f"(95% CI {t.low:.1%}-{t.high:.1%}); {t.unscored} more could not be scored (in neither count)\n"
        )
        self.stdout.write(
            f"{'day':<12}{'collection':<24}{'backend':<14}{'answers':>8}{'flagged':>8}{'rate':>8}  {'95% CI':<13}{'unscored':>8}"
        )
        for r in reports.hallucination_rates(since=since):
            self.stdout.write(
                f"{r.day!s:<12}{(r.collection or '')[:23]:<24}{(r.backend or '')[:13]:<14}{r.answers:>8}{r.flagged:>8}"
                f"{r.rate:>8.1%}  {f'{r.low:.1%}-{r.high:.1%}':<13}{r.unscored:>8}"
            )

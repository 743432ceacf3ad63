from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from oidc_provider.models import Client, ResponseType


class Command(BaseCommand):
    help = "Register a confidential client (authorization code flow) of the test provider"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("client_id")
        parser.add_argument("--secret", required=True)
        parser.add_argument("--redirect-uri", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        client, _ = Client.objects.update_or_create(
            client_id=options["client_id"],
            defaults={
                "name": "GroundRAG", "client_type": "confidential", "client_secret": options["secret"],
                "jwt_alg": "RS256", "require_consent": False, "reuse_consent": True,
                "_redirect_uris": options["redirect_uri"],
            },
        )
        code, _ = ResponseType.objects.get_or_create(value="code", defaults={"description": "code"})
        client.response_types.set([code])
        self.stdout.write(f"client {client.client_id}")

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from ingestion.models import Collection
from ingestion.services import document_upload

DEMO_DIR = Path(settings.BASE_DIR) / "demo"


class Command(BaseCommand):
    help = "Create the demo collection from demo/*.pdf (queued for ingestion) and, outside production, an admin user."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--admin-password", default="admin", help="password of the 'admin' user created if none exists")

    def handle(self, *args: Any, **options: Any) -> None:
        collection, _ = Collection.objects.get_or_create(
            slug="demo", defaults={"name": "Demo", "description": "Northwind Robotics sample documents"}
        )
        for path in sorted(DEMO_DIR.glob("*.pdf")):
            upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
            outcome = document_upload(collection=collection, upload=upload, actor=Actor.system("manage.py seed_demo"))
            self.stdout.write(outcome.message)
        users = get_user_model()
        if not users.objects.filter(is_superuser=True).exists():
            if settings.PRODUCTION:
                raise CommandError("No superuser: create one with `manage.py createsuperuser`")
            users.objects.create_superuser("admin", "admin@example.com", options["admin_password"])
            self.stdout.write(f"Created user 'admin' with password '{options['admin_password']}' (development only)")

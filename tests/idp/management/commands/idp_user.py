from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or update a user of the test provider and set their groups (as its administrator would)"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password")
        parser.add_argument("--email", default="")
        parser.add_argument("--groups", default="", help="comma-separated; replaces the user's groups")

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = User.objects.get_or_create(username=options["username"], defaults={"email": options["email"]})
        if options["password"]:
            user.set_password(options["password"])
            user.save()
        names = [g for g in options["groups"].split(",") if g]
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in names])
        self.stdout.write(f"{user.username}: {', '.join(names) or 'no groups'}")

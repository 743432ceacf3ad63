from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from ingestion import access
from ingestion.exceptions import GrantInvalid
from ingestion.models import Collection, CollectionGrant


class Command(BaseCommand):
    help = (
        "Grant a collection to a user or a group (reader or editor), change the role, or remove the grant; "
        "without a change, list its members. Recorded in the audit trail like the members page."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("collection", metavar="SLUG")
        who = parser.add_mutually_exclusive_group()
        who.add_argument("--user", metavar="USERNAME")
        who.add_argument("--group", metavar="NAME", help="created if new (single sign-on fills it at sign-in)")
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--role", choices=[r.value for r in CollectionGrant.Role])
        what.add_argument("--remove", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        collection = Collection.objects.filter(slug=options["collection"]).first()
        if collection is None:
            known = ", ".join(Collection.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"No collection with slug {options['collection']!r}; existing: {known}")
        kind, name = ("user", options["user"]) if options["user"] else ("group", options["group"])
        if name and (options["role"] or options["remove"]):
            self._change(collection, kind, name, options)
        elif name or options["role"] or options["remove"]:
            raise CommandError("Name a --user or a --group and either a --role or --remove")
        for member in access.collection_members(collection=collection):
            self.stdout.write(f"{member.kind}\t{member.name}\t{member.role}")

    def _change(self, collection: Collection, kind: str, name: str, options: dict[str, Any]) -> None:
        actor = Actor.system("manage.py collection_grant")
        try:
            user, group = access.principal_find(kind=kind, name=name)
        except GrantInvalid as exc:
            raise CommandError(str(exc)) from exc
        if options["remove"]:
            grant = CollectionGrant.objects.filter(collection=collection, user=user, group=group).first()
            if grant is None:
                raise CommandError(f"{kind} {name!r} has no grant in {collection.slug}")
            access.grant_remove(grant=grant, actor=actor)
        else:
            access.grant_set(collection=collection, role=options["role"], actor=actor, user=user, group=group)

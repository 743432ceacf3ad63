"""A collection's members page, for its editors and staff: grant it to a user or a group, change a role,
remove a grant. Every change goes through ingestion.access, which records it in the audit trail."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit.services import actor_of_request
from ingestion import access
from ingestion.exceptions import CollectionNotFound
from ingestion.models import Collection, CollectionGrant


class MemberAddForm(forms.Form):
    kind = forms.ChoiceField(choices=[("group", "Group"), ("user", "User")], initial="group")
    name = forms.CharField(max_length=150, help_text="A user name, or a group name as the identity provider sends it")
    role = forms.ChoiceField(choices=CollectionGrant.Role.choices, initial=CollectionGrant.Role.READER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=CollectionGrant.Role.choices)


def _grant(collection: Collection, grant_id: int) -> CollectionGrant:
    grant = CollectionGrant.objects.select_related("collection", "user", "group").filter(
        id=grant_id, collection=collection
    ).first()
    if grant is None:
        raise CollectionNotFound(f"Grant {grant_id} does not exist in {collection.slug!r}")
    return grant


def _back(request: HttpRequest, collection: Collection) -> HttpResponse:
    """To the members page, or to the chat when the change took the user's own right to edit away."""
    if not access.collections_editable(user=request.user).filter(id=collection.id).exists():
        messages.info(request, f"You may no longer change {collection.name}")
        return redirect("chat")
    return redirect(reverse("collection-members", args=[collection.slug]))


@login_required
@require_GET
def members_page(request: HttpRequest, slug: str) -> HttpResponse:
    collection = access.collection_editable(user=request.user, slug=slug)
    return render(
        request,
        "ingestion/members.html",
        {
            "collection": collection,
            "members": access.collection_members(collection=collection),
            "form": MemberAddForm(),
            "roles": CollectionGrant.Role.choices,
        },
    )


@login_required
@require_POST
def member_add(request: HttpRequest, slug: str) -> HttpResponse:
    collection = access.collection_editable(user=request.user, slug=slug)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Name a user or a group and choose a role")
        return redirect(reverse("collection-members", args=[collection.slug]))
    data = form.cleaned_data
    user, group = access.principal_find(kind=data["kind"], name=data["name"])
    grant = access.grant_set(collection=collection, role=data["role"], actor=actor_of_request(request), user=user, group=group)
    messages.success(request, f"{grant.principal} is now {grant.get_role_display().lower()} of {collection.name}")
    return _back(request, collection)


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, grant_id: int) -> HttpResponse:
    collection = access.collection_editable(user=request.user, slug=slug)
    grant = _grant(collection, grant_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        access.grant_set(
            collection=collection, role=form.cleaned_data["role"], actor=actor_of_request(request),
            user=grant.user, group=grant.group,
        )
        messages.success(request, f"{grant.principal} is now {form.cleaned_data['role']} of {collection.name}")
    return _back(request, collection)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, grant_id: int) -> HttpResponse:
    collection = access.collection_editable(user=request.user, slug=slug)
    grant = _grant(collection, grant_id)
    access.grant_remove(grant=grant, actor=actor_of_request(request))
    messages.success(request, f"{grant.principal} removed from {collection.name}")
    return _back(request, collection)

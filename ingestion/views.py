"""Editors' pages (staff edit every collection): upload documents (PDF, Word, HTML, Markdown, text), watch
their progress, delete or re-index them; and for every reader of a collection, its documents' files and page
images (the citation viewer's). Thin: services do the work; ingestion.access says, at each request, which
collections the user may read or change."""

from __future__ import annotations

from dataclasses import asdict

from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit.services import actor_of_request
from ingestion import maintenance, pages, services
from ingestion.access import collections_editable
from ingestion.exceptions import CollectionNotFound
from ingestion.models import Collection, Document
from ingestion.parsers import parsers_accept, parsers_accepted
from ragsite.downloads import file_download_response, image_response


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        # An empty file is refused by the ingestion service with its own reason, without failing the batch.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self, data: object, initial: object = None) -> list[object]:
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class UploadForm(forms.Form):
    # Declared fields are moved to base_fields by the form metaclass, so this does not shadow Form.files.
    files = MultipleFileField(label="Files")  # type: ignore[assignment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # What the file picker offers: the parsers' types (a hint only: the bytes decide, at upload).
        self.fields["files"].widget.attrs["accept"] = parsers_accept()

    def clean_files(self) -> list[object]:
        files: list[object] = self.cleaned_data["files"]
        if len(files) > settings.MAX_UPLOAD_FILES:
            raise forms.ValidationError(f"At most {settings.MAX_UPLOAD_FILES} files at once; upload the rest next")
        return files


class CollectionForm(forms.ModelForm):
    class Meta:
        model = Collection
        fields = ["name", "description"]
        # A short description: three lines, not Django's default ten (which dwarfed the name field beside it).
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


def _selected_collection(request: HttpRequest) -> Collection | None:
    """The collection named by ?collection=, or the first the user may edit; 404 for one they may not."""
    editable = collections_editable(user=request.user)
    slug = request.GET.get("collection")
    collection = editable.filter(slug=slug).first() if slug else editable.first()
    if collection is None and (slug or not request.user.is_staff):
        raise CollectionNotFound(
            f"Collection {slug!r} does not exist or you may not change it" if slug
            else "You may not change the documents of any collection: ask an editor of one or an administrator"
        )
    return collection


def _editable_document(request: HttpRequest, document_id: int) -> Document:
    document = (
        Document.objects.select_related("collection")
        .filter(id=document_id, collection__in=collections_editable(user=request.user))
        .first()
    )
    if document is None:
        raise CollectionNotFound(f"Document {document_id} does not exist or you may not change it")
    return document


def _form_errors(request: HttpRequest, form: forms.BaseForm) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, str(error))


@login_required
@require_GET
def documents_page(request: HttpRequest) -> HttpResponse:
    collection = _selected_collection(request)
    documents = collection.documents.all() if collection else Document.objects.none()
    return render(
        request,
        "ingestion/documents.html",
        {
            "collection": collection,
            "collections": collections_editable(user=request.user),
            "documents": documents,
            "form": UploadForm(),
            "collection_form": CollectionForm(),
            "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
            "accepted": parsers_accepted(),
        },
    )


@login_required
@require_POST
def documents_upload(request: HttpRequest) -> HttpResponse:
    raw_id = request.POST.get("collection", "")
    collection = collections_editable(user=request.user).filter(id=int(raw_id)).first() if raw_id.isdigit() else None
    if collection is None:
        raise CollectionNotFound(f"Collection {raw_id!r} does not exist or you may not upload to it")
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect(f"{reverse('documents')}?collection={collection.slug}")
    actor = actor_of_request(request)
    outcomes = [services.document_upload(collection=collection, upload=f, actor=actor) for f in form.cleaned_data["files"]]
    for outcome in outcomes:
        level = messages.SUCCESS if outcome.created and outcome.document.status != "failed" else messages.WARNING
        messages.add_message(request, level, outcome.message)
    return redirect(f"{reverse('documents')}?collection={collection.slug}")


@staff_member_required
@require_POST
def collection_create(request: HttpRequest) -> HttpResponse:
    form = CollectionForm(request.POST)
    if form.is_valid():
        collection = form.save()
        messages.success(request, f"Collection {collection.name} created")
        return redirect(f"{reverse('documents')}?collection={collection.slug}")
    _form_errors(request, form)
    return redirect("documents")


@login_required
@require_GET
def documents_status(request: HttpRequest) -> JsonResponse:
    maintenance.stalled_check_maybe()  # cheap: at most once a minute per process
    collection = _selected_collection(request)
    documents = collection.documents.all() if collection else Document.objects.none()
    return JsonResponse({"documents": [asdict(services.document_state(d)) for d in documents.select_related("collection")]})


@login_required
@require_POST
def document_delete(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _editable_document(request, document_id)
    services.document_delete(document=document, actor=actor_of_request(request))
    messages.success(request, f"{document.original_name} deleted")
    return redirect(f"{reverse('documents')}?collection={document.collection.slug}")


@login_required
@require_POST
def document_reindex(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _editable_document(request, document_id)
    services.document_reindex(document=document, actor=actor_of_request(request))
    messages.success(request, f"{document.original_name} queued for re-indexing")
    return redirect(f"{reverse('documents')}?collection={document.collection.slug}")


@login_required
@require_GET
async def document_file(request: HttpRequest, document_id: int) -> StreamingHttpResponse:
    """The original file, for a reader of its collection (a download, never shown inline)."""
    user = await request.auser()
    stored = await sync_to_async(
        lambda: pages.document_file(document=services.document_readable(user=user, document_id=document_id))
    )()
    return file_download_response(path=stored.path, filename=stored.name, content_type=stored.media_type)


@login_required
@require_GET
async def document_page(request: HttpRequest, document_id: int, number: int) -> HttpResponse:
    """A page of the document as a PNG, rendered off the event loop (and cached)."""
    document = await sync_to_async(services.document_readable)(user=await request.auser(), document_id=document_id)
    return image_response(await pages.page_image_async(document=document, number=number))

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ingestion import services
from ingestion.models import Chunk, Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "adapter", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    # Files of every parser's type may be added here (PDF, Word, HTML, Markdown, text): the same service as the
    # upload page sniffs the bytes and refuses other types with a reason.
    list_display = ["original_name", "collection", "status", "progress", "page_count", "unit", "size", "created_at"]
    list_filter = ["status", "unit", "collection"]
    search_fields = ["original_name", "sha256"]
    readonly_fields = [
        "sha256", "size", "page_count", "unit", "status", "progress", "stage", "error", "error_code", "warnings",
        "attempts", "started_at", "finished_at", "uploaded_by", "original_name",
    ]
    actions = ["reindex"]

    def save_model(self, request: HttpRequest, obj: Document, form: object, change: bool) -> None:
        # New documents go through the same service as the upload page (hashing, dedupe, queueing).
        if change:
            super().save_model(request, obj, form, change)
            return
        upload = request.FILES.get("file")
        if upload is None:
            return
        outcome = services.document_upload(collection=obj.collection, upload=upload, user=request.user)
        obj.pk = outcome.document.pk
        self.message_user(request, outcome.message)

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            services.document_delete(document=document)

    @admin.action(description="Re-index selected documents")
    def reindex(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = 0
        for document in queryset.exclude(file=""):
            services.document_reindex(document=document)
            count += 1
        self.message_user(request, f"{count} documents queued", messages.SUCCESS)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["document", "ordinal", "page_start", "page_end", "section", "token_count"]
    list_filter = ["document__collection"]
    search_fields = ["text"]
    exclude = ["embedding"]
    readonly_fields = ["document", "ordinal", "text", "page_start", "page_end", "section", "token_count"]

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audit.services import actor_of_request
from ingestion import services
from ingestion.models import Chunk, Collection, CollectionGrant, Document


class GrantInline(admin.TabularInline):
    """Grants are shown here and changed on the collection's members page, which records each change in
    the audit trail (an inline form would bypass it)."""

    model = CollectionGrant
    fields = ["user", "group", "role", "granted_by", "updated_at"]
    readonly_fields = ["user", "group", "role", "granted_by", "updated_at"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "adapter", "members_link", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [GrantInline]

    @admin.display(description="members")
    def members_link(self, obj: Collection) -> str:
        url = reverse("collection-members", args=[obj.slug])
        return format_html('<a href="{}">manage members</a>', url)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    # Files of every parser's type may be added here (PDF, Word, HTML, Markdown, text): the same service as the
    # upload page sniffs the bytes and refuses other types with a reason.
    list_display = ["original_name", "collection", "status", "progress", "page_count", "unit", "size", "created_at"]
    list_filter = ["status", "unit", "collection"]
    search_fields = ["original_name", "sha256"]
    readonly_fields = [
        "sha256", "size", "page_count", "unit", "status", "progress", "stage", "error", "error_code", "warnings",
        "attempts", "started_at", "finished_at", "uploaded_by", "uploader", "original_name",
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
        outcome = services.document_upload(collection=obj.collection, upload=upload, actor=actor_of_request(request))
        obj.pk = outcome.document.pk
        self.message_user(request, outcome.message)

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.document_delete(document=obj, actor=actor_of_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        actor = actor_of_request(request)
        for document in queryset.select_related("collection"):
            services.document_delete(document=document, actor=actor)

    @admin.action(description="Re-index selected documents")
    def reindex(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        count = 0
        actor = actor_of_request(request)
        for document in queryset.exclude(file="").select_related("collection"):
            services.document_reindex(document=document, actor=actor)
            count += 1
        self.message_user(request, f"{count} documents queued", messages.SUCCESS)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["document", "ordinal", "page_start", "page_end", "section", "token_count"]
    list_filter = ["document__collection"]
    search_fields = ["text"]
    exclude = ["embedding"]
    readonly_fields = ["document", "ordinal", "text", "page_start", "page_end", "section", "token_count"]

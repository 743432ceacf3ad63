from django.urls import path

from ingestion import member_views, views

urlpatterns = [
    path("", views.documents_page, name="documents"),
    path("upload/", views.documents_upload, name="documents-upload"),
    path("status/", views.documents_status, name="documents-status"),
    path("collections/new/", views.collection_create, name="collection-create"),
    path("collections/<slug:slug>/members/", member_views.members_page, name="collection-members"),
    path("collections/<slug:slug>/members/add/", member_views.member_add, name="collection-member-add"),
    path(
        "collections/<slug:slug>/members/<int:grant_id>/role/", member_views.member_role, name="collection-member-role"
    ),
    path(
        "collections/<slug:slug>/members/<int:grant_id>/remove/", member_views.member_remove,
        name="collection-member-remove",
    ),
    path("<int:document_id>/delete/", views.document_delete, name="document-delete"),
    path("<int:document_id>/reindex/", views.document_reindex, name="document-reindex"),
    # For readers of the document's collection, not only staff: the citation viewer's file and pages.
    path("<int:document_id>/file/", views.document_file, name="document-file"),
    path("<int:document_id>/pages/<int:number>.png", views.document_page, name="document-page"),
]

from django.urls import path

from ingestion import views

urlpatterns = [
    path("", views.documents_page, name="documents"),
    path("upload/", views.documents_upload, name="documents-upload"),
    path("status/", views.documents_status, name="documents-status"),
    path("collections/new/", views.collection_create, name="collection-create"),
    path("<int:document_id>/delete/", views.document_delete, name="document-delete"),
    path("<int:document_id>/reindex/", views.document_reindex, name="document-reindex"),
    # For readers of the document's collection, not only staff: the citation viewer's file and pages.
    path("<int:document_id>/file/", views.document_file, name="document-file"),
    path("<int:document_id>/pages/<int:number>.png", views.document_page, name="document-page"),
]

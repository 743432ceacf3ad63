from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ingestion.exceptions import ERRORS
        from ragsite.errors import register_errors

        register_errors(ERRORS)

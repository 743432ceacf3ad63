from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import receivers
        from audit.exceptions import ERRORS
        from ragsite.errors import register_errors

        register_errors(ERRORS)
        receivers.connect()

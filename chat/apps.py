from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.exceptions import ERRORS
        from ragsite.errors import register_errors

        register_errors(ERRORS)

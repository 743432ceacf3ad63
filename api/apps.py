from typing import Any

from django.apps import AppConfig
from django.db.models.signals import pre_delete


class ApiConfig(AppConfig):
    name = "api"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from api.exceptions import API_ERRORS
        from api.models import ApiKey
        from ragsite.errors import register_errors

        register_errors(API_ERRORS)
        pre_delete.connect(_conversations_delete, sender=ApiKey, dispatch_uid="api.key_conversations_delete")


def _conversations_delete(*, instance: Any, **_: Any) -> None:
    """A deleted key takes its conversations with it (chat's rows, linked from here)."""
    from chat.models import Conversation

    Conversation.objects.filter(key_link__key=instance).delete()

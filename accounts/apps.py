from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.exceptions import ERRORS
        from ragsite.errors import register_errors

        register_errors(ERRORS)

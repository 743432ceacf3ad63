from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from api.exceptions import API_ERRORS
        from chat.exceptions import QuestionInvalid
        from ragsite.errors import register_errors

        # The chat app maps none of its errors yet; the API needs an empty or too-long question to be a 400.
        register_errors([*API_ERRORS, (QuestionInvalid, 400, "invalid_question")])

class ChatError(Exception):
    """Base of the chat app's errors."""


class QuestionInvalid(ChatError):
    """The question cannot be asked as is (empty, too long)."""


class RequestInvalid(ChatError):
    """A form value is missing or malformed (a collection id that is not a number, a feedback value)."""


class ConversationNotFound(ChatError):
    """No such conversation, or not the caller's: both look the same, so ids leak nothing."""


class AccessDenied(ChatError):
    """The caller may not use this collection, passage or answer; it looks the same as one that does not exist."""


class SignInRequired(ChatError):
    """No session (or, for /metrics, no valid token)."""


# (exception, HTTP status, stable code), registered with ragsite.errors when the app loads. A conversation
# or answer that is not the caller's is a 404 everywhere, exactly like one that does not exist.
ERRORS: list[tuple[type[Exception], int, str]] = [
    (QuestionInvalid, 400, "invalid_question"),
    (RequestInvalid, 400, "bad_request"),
    (ConversationNotFound, 404, "not_found"),
    (AccessDenied, 404, "not_found"),
    (SignInRequired, 401, "unauthenticated"),
    (ChatError, 400, "bad_request"),
]

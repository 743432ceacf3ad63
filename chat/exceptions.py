class ChatError(Exception):
    """Base of the chat app's errors."""


class QuestionInvalid(ChatError):
    """The question cannot be asked as is (empty, too long)."""


class ConversationNotFound(ChatError):
    """No such conversation, or not the caller's: both look the same, so ids leak nothing."""


class AccessDenied(ChatError):
    """The caller may not use this collection, passage or answer."""

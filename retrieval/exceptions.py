class RetrievalError(Exception):
    """Base of the retrieval app's errors."""


class IndexUnavailable(RetrievalError):
    """A collection's index cannot be loaded or rebuilt right now."""


# (exception, HTTP status, stable code), registered with ragsite.errors when the app loads.
ERRORS: list[tuple[type[Exception], int, str]] = [
    (IndexUnavailable, 503, "index_unavailable"),
    (RetrievalError, 500, "retrieval_error"),
]

class RetrievalError(Exception):
    """Base of the retrieval app's errors."""


class EmbedderUnavailable(RetrievalError):
    """The embedding model cannot be loaded; the message says which and what to do."""


class IndexUnavailable(RetrievalError):
    """A collection's index cannot be loaded or rebuilt right now."""

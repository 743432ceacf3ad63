class AuditError(Exception):
    """Base of the audit app's errors."""


class AppendOnly(AuditError):
    """An audit record was to be changed or deleted: records are written once and only expire by retention."""


class FilterInvalid(AuditError):
    """A filter of the audit page or its export cannot be read (a malformed date)."""


# (exception, HTTP status, stable code), registered with ragsite.errors when the app loads.
ERRORS: list[tuple[type[Exception], int, str]] = [
    (AppendOnly, 409, "audit_append_only"),
    (FilterInvalid, 400, "bad_request"),
    (AuditError, 400, "bad_request"),
]

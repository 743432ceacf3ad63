class AccountsError(Exception):
    """Base of the accounts app's errors."""


class PasswordSignInOff(AccountsError):
    """A password was sent while RAG_PASSWORD_LOGIN=0: people sign in through the identity provider."""


class SsoUnavailable(AccountsError):
    """Single sign-on is not configured (RAG_OIDC_ISSUER is empty)."""


class SsoRefused(AccountsError):
    """The identity provider's answer cannot sign anyone in (an error it returned, a bad state or token,
    no subject); the message says what happened."""


# (exception, HTTP status, stable code), registered with ragsite.errors when the app loads.
ERRORS: list[tuple[type[Exception], int, str]] = [
    (PasswordSignInOff, 403, "password_sign_in_off"),
    (SsoUnavailable, 404, "not_found"),
    (SsoRefused, 403, "sign_in_refused"),
    (AccountsError, 400, "bad_request"),
]

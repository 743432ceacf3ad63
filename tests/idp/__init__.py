"""A real OpenID Connect provider for the single sign-on tests: a small Django project around
django-oidc-provider, run as its own process with its own database (tests/test_sso.py starts it).

Its directory is Django's users and groups; the `groups` scope puts a user's group names in the `groups`
claim. `python -m django idp_user NAME --password PW --groups a,b` sets a user up or changes their groups,
as an administrator would in the identity provider; `idp_client` registers GroundRAG as a client.
"""

"""ASGI entry point: answers stream to browsers over server-sent events, which needs an async server."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
application = get_asgi_application()

"""`asgi = chatproj.asgi:application`: Django for HTTP, the chat consumer for WebSockets,
as Channels' docs route them."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproj.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from chatproj.consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": URLRouter([path("ws/chat/<str:room>/", ChatConsumer.as_asgi())]),
    }
)

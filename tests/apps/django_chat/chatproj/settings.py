"""A minimal Django project with a Channels WebSocket consumer, for the integration tests
(crates/it/tests/asgi_channels.rs): no database, an in-memory channel layer (so a group
spans the consumers of one worker process)."""

SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "chatproj.urls"
INSTALLED_APPS = ["channels"]
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
ASGI_APPLICATION = "chatproj.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

"""Minimal settings: one sqlite database (API_DB, default in API_OUT), no middleware."""
import os

OUT = os.environ.get("API_OUT", "/tmp")
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["apiproj"]
MIDDLEWARE = []
ROOT_URLCONF = "apiproj.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("API_DB") or os.path.join(OUT, "api.sqlite3"),
    }
}
USE_TZ = True

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiproj.settings")
application = get_wsgi_application()

import apiproj.tasks  # noqa: E402,F401  (registers the hooks at import, in the master)

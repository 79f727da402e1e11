"""ruwsgi: a uWSGI-compatible WSGI server. The runtime lives in the `_ruwsgi` extension."""

"""WSGI apps for the `mount` tests: each answers JSON naming itself, with the SCRIPT_NAME
and PATH_INFO it was given.

Import it as a module (with `pythonpath` pointing here): `module = mounted` serves
`application` ("default"), `mount = /shop=mounted:shop` serves "shop". Loaded as a file
(`mount = /blog=/path/to/mounted.py`) its `application` answers "file": a file is run
under a module name of its own (`uwsgi_file_...`).
"""

import json


def _app(name):
    def app(environ, start_response):
        body = json.dumps(
            {
                "app": name,
                "script_name": environ.get("SCRIPT_NAME"),
                "path_info": environ.get("PATH_INFO"),
                "request_uri": environ.get("REQUEST_URI"),
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


application = _app("file" if __name__.startswith("uwsgi_file_") else "default")
blog = _app("blog")
shop = _app("shop")
shop_admin = _app("shop-admin")

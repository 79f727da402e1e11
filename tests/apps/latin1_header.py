"""A response header with a latin-1 character (a download's file name set by hand)
(crates/it/tests/core_wsgi.rs): PEP 3333 says it goes out as one byte, 0xE9."""


def application(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Disposition", 'attachment; filename="caf\u00e9.pdf"'),
    ])
    return [b"ok"]

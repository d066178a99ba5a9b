"""``facever serve``: the HTTP service (FastAPI on uvicorn, the ``serve`` extra).

A thin layer over the library, as the CLI is: it parses, authorises, calls :mod:`facever` and
answers JSON with the same fields as the CLI's ``--json``. Parts, one job each:

* :mod:`~facever.service.settings`: bind address, database, model, limits.
* :mod:`~facever.service.app`: the FastAPI app (wiring), the page and offline docs.
* :mod:`~facever.service.state`: what one worker holds (model, gallery, keys, limiters).
* :mod:`~facever.service.auth`: API keys and scopes. :mod:`~facever.service.limits`: inference slots
  with a bounded queue (503), per-key rate limits (429).
* :mod:`~facever.service.middleware`: body size/time limits, access log, security headers.
* :mod:`~facever.service.problems`: RFC 9457 errors. :mod:`~facever.service.uploads`: uploaded images.
* ``routes_*``: the routes (faces, people, service administration).

The HTTP contract is documented in ``docs/HTTP_API.md`` and served as OpenAPI at ``/openapi.json``.
"""

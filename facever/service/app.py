"""The FastAPI application of ``facever serve``: wiring only.

* :func:`create_app` builds the app for one :class:`~facever.service.settings.ServeSettings`: the
  model and gallery are loaded once per worker at startup (lifespan), routes come from the
  ``routes_*`` modules, errors are problem details (:mod:`facever.service.problems`), the body guard
  and access log wrap everything (:mod:`facever.service.middleware`).
* :func:`app_from_env` is uvicorn's factory in each worker process (settings from the environment).
* The page (``/``, static files, no CDN) and offline API docs (``/docs``, Swagger UI's assets from
  the ``swagger-ui-bundle`` package) are served by the app itself.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

import facever
from facever.service import routes_admin, routes_inference, routes_liveness, routes_people
from facever.service.middleware import Guard
from facever.service.problems import install_handlers
from facever.service.settings import MAX_ENROL_IMAGES, ServeSettings

log = logging.getLogger("facever.service")

STATIC_DIR = Path(str(resources.files("facever.service") / "static"))

DESCRIPTION = """Face verification and recognition over HTTP: 1:1 verify, 1:K identify with an FPIR that
holds at any gallery size, enrolment and gallery management. Send `Authorization: Bearer KEY`.
Errors are RFC 9457 problem details with a stable `code`."""


def create_app(settings: ServeSettings | None = None, state=None) -> FastAPI:
    """The app for ``settings`` (default: from the environment).

    Args:
        settings: the service settings.
        state: an already loaded :class:`~facever.service.state.ServiceState` (tests); by default
            it is loaded at startup.
    """
    settings = settings or ServeSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from facever.service.state import ServiceState

        loaded = state or ServiceState.load(settings)
        app.state.service = loaded
        log.info("worker ready: model %s, %d inference slot(s), queue %d", loaded.verifier.model_version,
                 settings.concurrency, settings.queue_size)
        try:
            yield
        finally:
            if state is None:
                loaded.close()

    app = FastAPI(title="facever", version=facever.__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    install_handlers(app)
    app.include_router(routes_admin.router)
    app.include_router(routes_inference.router)
    app.include_router(routes_people.router)
    app.include_router(routes_liveness.router)
    _add_page_and_docs(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"], max_age=600)
    app.add_middleware(Guard, max_upload=settings.max_upload, max_images=MAX_ENROL_IMAGES,
                       body_timeout_s=settings.body_timeout_s)
    return app


def _add_page_and_docs(app: FastAPI) -> None:
    """``/`` (the page), ``/static/*`` and ``/docs`` (Swagger UI served from local files)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the docs page is optional; /openapi.json always works
        return
    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="facever API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


def app_from_env() -> FastAPI:
    """uvicorn's app factory in every worker: settings from ``FACEVER_SERVE_SETTINGS``."""
    return create_app(ServeSettings.from_env())

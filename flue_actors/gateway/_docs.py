"""The OpenAPI page at ``/docs``, with its assets served from an installed package.

FastAPI's own page loads Swagger UI from a CDN, so it is blank wherever the browser cannot
reach the internet (a gateway on a private network, this project's machines). The
``swagger-ui-bundle`` package ships the same assets; they are served under ``/docs/assets``.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "add_docs"]

ASSETS: Final = "/docs/assets"


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` for ``app`` (created with ``docs_url=None``) from local assets."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - docs",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
        )

    app.add_route("/docs", docs, include_in_schema=False)

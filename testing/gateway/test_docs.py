"""``/docs`` works offline: the page and every asset it loads come from the gateway itself."""

from __future__ import annotations

import re

import httpx


async def test_the_docs_page_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text  # no CDN, no absolute URL of any kind
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    assert "/docs/assets/swagger-ui.css" in assets
    for asset in assets:
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.content, asset
    assert "url: '/openapi.json'" in page.text
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200
    assert "/workflows/{name}" in schema.json()["paths"]


async def test_redoc_is_not_served_from_a_cdn(client: httpx.AsyncClient) -> None:
    response = await client.get("/redoc")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "route_not_found"

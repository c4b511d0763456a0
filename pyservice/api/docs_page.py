"""The OpenAPI document at `/openapi.json`, and a docs page at `/docs` rendered here from
it (server-side HTML, no script, nothing from a CDN).

Litestar's OpenAPI router also serves its default document at the router's own path (and
a 404 page under it); that router lives at `/schema` so that `/` is the web page, and the
two routes below serve the documents at the top level."""

from __future__ import annotations

import html
import json
from typing import Any

from litestar import Request, get
from litestar.enums import MediaType, OpenAPIMediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin

NO_FAVICON = "<link rel='icon' href='data:,'>"


class JsonDocument(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path="/openapi.json", media_type=OpenAPIMediaType.OPENAPI_JSON, favicon=NO_FAVICON)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, openapi_schema)


def _ref(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    if "oneOf" in schema:
        return " | ".join(_ref(s) for s in schema["oneOf"])
    if schema.get("type") == "array":
        return f"array of {_ref(schema.get('items', {}))}"
    text = str(schema.get("type", "any"))
    if "enum" in schema:
        text += " (" + ", ".join(html.escape(json.dumps(v)) for v in schema["enum"]) + ")"
    return html.escape(text)


class DocsPage(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path="/docs", media_type=MediaType.HTML, favicon=NO_FAVICON, style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        parts = [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{html.escape(info.get('title', 'API'))} API</title>{NO_FAVICON}",
            "<link rel='stylesheet' href='/static/app.css'></head><body><main class='docs'>",
            f"<h1>{html.escape(info.get('title', 'API'))} API {html.escape(str(info.get('version', '')))}</h1>",
            "<p>The machine-readable document: <a href='/openapi.json'>/openapi.json</a>. "
            "Routes marked 🔒 need <code>Authorization: Bearer &lt;token&gt;</code>.</p>",
        ]
        for path, item in openapi_schema.get("paths", {}).items():
            for method, op in item.items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                lock = " 🔒" if op.get("security") else ""
                parts.append(
                    f"<section class='op'><h2><code>{method.upper()} {html.escape(path)}</code>{lock}</h2>"
                    f"<p>{html.escape(op.get('summary', ''))}</p>"
                )
                if op.get("description"):
                    parts.append(f"<p>{html.escape(op['description'])}</p>")
                params = op.get("parameters", [])
                if params:
                    parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th></tr>")
                    for p in params:
                        parts.append(
                            f"<tr><td>{html.escape(p['name'])}</td><td>{html.escape(p['in'])}</td>"
                            f"<td>{_ref(p.get('schema', {}))}</td><td>{'yes' if p.get('required') else 'no'}</td></tr>"
                        )
                    parts.append("</table>")
                body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                if body:
                    parts.append(f"<p>body: {_ref(body)}</p>")
                parts.append("<ul>")
                for status, resp in op["responses"].items():
                    schema = resp.get("content", {}).get("application/json", {}).get("schema")
                    shown = f": {_ref(schema)}" if schema else ""
                    parts.append(f"<li>{html.escape(status)} {html.escape(resp.get('description', ''))}{shown}</li>")
                parts.append("</ul></section>")
        parts.append("<h2>Schemas</h2>")
        for name, schema in openapi_schema.get("components", {}).get("schemas", {}).items():
            parts.append(f"<section id='schema-{html.escape(name)}' class='schema'><h3>{html.escape(name)}</h3><ul>")
            required = set(schema.get("required", []))
            for prop, s in schema.get("properties", {}).items():
                mark = "" if prop in required else " (optional)"
                parts.append(f"<li><code>{html.escape(prop)}</code>: {_ref(s)}{mark}</li>")
            parts.append("</ul></section>")
        parts.append("</main></body></html>")
        return "".join(parts).encode()


_JSON = JsonDocument()
_DOCS = DocsPage()


def _schema(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


@get("/openapi.json", include_in_schema=False, media_type=OpenAPIMediaType.OPENAPI_JSON, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> bytes:
    return _JSON.render(request, _schema(request))


@get("/docs", include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def docs(request: Request[Any, Any, Any]) -> bytes:
    return _DOCS.render(request, _schema(request))


ROUTES = [openapi_json, docs]

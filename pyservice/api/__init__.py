"""`copyengine api`: the HTTP API and the web page (Litestar on uvicorn).

Stateless: every request reads PostgreSQL, and a change is submitted through
`pyservice.control` exactly as the command line submits it, so several replicas can run
side by side. Modules: `schemas` (the msgspec models: the OpenAPI document is generated
from them), `errors` (the one error shape), `auth` (bearer tokens and roles),
`middleware` (rate limits, security headers), `changes` (a control change's HTTP
answer), `public`, `follower`, `provider`, `operator` (the routes by who may call them),
`pages` (the web page), `app` (assembly), `server` (uvicorn).
"""

"""The dashboard's Starlette application: who is asking (session cookie, API token, or
the local user of an unauthenticated loopback dashboard), CSRF checks on every POST,
security headers, the login and logout pages; the pages themselves are in
:mod:`upkeeper.web.pages`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from upkeeper.store.history import History
from upkeeper.web import docs, pages
from upkeeper.web.auth import LOCAL_USER, User, login_key
from upkeeper.web.render import render
from upkeeper.web.site import Site, WebConfig, read_form, site_of

log = logging.getLogger("upkeeper.web")
COOKIE = "upkeeper_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def _identify(request: Request, site: Site) -> tuple[User | None, str, str | None]:
    """(user, CSRF token, new session id to set) for a request."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return site.users.verify_token(auth[7:].strip()), "", None
    sid = request.cookies.get(COOKIE)
    found = site.users.session(sid) if sid else None
    if found:
        return found[0], found[1], None
    if not site.users.configured():
        sid, csrf = site.users.new_session(LOCAL_USER)
        return LOCAL_USER, csrf, sid
    return None, "", None


#: Headers a reverse proxy adds: a request carrying one came from wherever the proxy is.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                 "x-real-ip", "via")


def _host_allowed(request: Request, site: Site) -> bool:
    """A loopback host name and not proxied: nginx names the upstream (127.0.0.1:8470) in
    Host unless told otherwise, which would hand the local operator to the proxy's
    whole audience."""
    if any(h in request.headers for h in PROXY_HEADERS):
        return False
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in site.config.allowed_hosts


def _same_origin(request: Request) -> bool:
    """A browser's POST names its page's origin; it must be this site (a second net
    under SameSite=Strict cookies and the CSRF token, and the one for the login form)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _cookie(response: Response, site: Site, sid: str) -> None:
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                        secure=site.config.tls or site.config.secure_cookies)


def _headers(response: Response, site: Site) -> Response:
    h = response.headers
    h.setdefault("content-security-policy", CSP)
    h["x-content-type-options"] = "nosniff"
    h["x-frame-options"] = "DENY"
    # Not no-referrer: under it browsers send "Origin: null" with our own forms.
    h["referrer-policy"] = "same-origin"
    h["cross-origin-opener-policy"] = "same-origin"
    h.setdefault("cache-control", "no-store")
    if site.config.tls:
        h["strict-transport-security"] = "max-age=31536000"
    return response


async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                ) -> Response:
    """Identify the caller, refuse what they may not do, add the security headers."""
    site = site_of(request)
    path = request.url.path
    if path.startswith("/static/"):  # the package's CSS, JS and icon: no data, no session
        return _headers(await call_next(request), site)
    configured = await run_in_threadpool(site.users.configured)
    if not configured and site.config.public:
        # A Host header is the client's to choose: off loopback it proves nothing.
        return _headers(PlainTextResponse("no dashboard users are configured (upkeeper"
                                          " web user add)", 503), site)
    if not configured and not _host_allowed(request, site):
        return _headers(PlainTextResponse("unknown host", 421), site)
    if request.method == "POST" and not _same_origin(request):
        return _headers(PlainTextResponse("cross-origin request refused", 403), site)
    user, csrf, new_sid = await run_in_threadpool(_identify, request, site)
    request.state.user, request.state.csrf = user, csrf
    if path == "/login":
        return _headers(await call_next(request), site)
    if user is None:
        if request.headers.get("authorization") or path.endswith(".json"):
            return _headers(PlainTextResponse("authentication required", 401), site)
        return _headers(RedirectResponse("/login", 303), site)
    if request.method == "POST" and csrf:  # token callers are not cookie-driven browsers
        try:
            form = await read_form(request)
        except HTTPException as exc:  # raised here, outside the app's exception handlers
            return _headers(PlainTextResponse("request too large", exc.status_code), site)
        request.state.form = form
        # Bytes: compare_digest raises on str that is not ASCII (a 500, not a 403).
        if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            return _headers(PlainTextResponse("CSRF check failed: reload the page", 403),
                            site)
    response = await call_next(request)
    if new_sid:
        _cookie(response, site, new_sid)
    return _headers(response, site)


def _client_addr(request: Request) -> str:
    return request.client.host if request.client else "?"


async def login(request: Request) -> Response:
    site = site_of(request)
    if request.method == "GET":
        if not site.users.configured():
            return RedirectResponse("/", 303)
        return render(request, "login.html.j2", {"error": ""})
    form = await read_form(request)
    name, password = form.get("user", "")[:64], form.get("password", "")[:1024]
    keys = (login_key(_client_addr(request)), f"user:{name}")
    limiter = site.config.limiter
    if not limiter.attempt(*keys):
        log.warning("login of %r from %s refused: too many failed attempts", name,
                    _client_addr(request))
        return render(request, "login.html.j2",
                      {"error": "Too many failed attempts; try again later."}, status=429)
    # Argon2 takes a while on purpose: not on the event loop.
    user = await run_in_threadpool(site.users.verify_password, name, password)
    if user is None:
        log.warning("failed login of %r from %s", name, _client_addr(request))
        return render(request, "login.html.j2", {"error": "Wrong user name or password."},
                      status=401)
    limiter.clear(*keys)
    old = request.cookies.get(COOKIE)
    if old:
        site.users.end_session(old)
    sid, _ = site.users.new_session(user)
    response = RedirectResponse("/", 303)
    _cookie(response, site, sid)
    return response


async def logout(request: Request) -> Response:
    site = site_of(request)
    sid = request.cookies.get(COOKIE)
    if sid:
        site.users.end_session(sid)
    response = RedirectResponse("/login" if site.users.configured() else "/", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    text = {404: "Not found", 403: "Not allowed", 413: "Too large"}.get(code, "Error")
    if getattr(request.state, "user", None) is None:
        return _headers(PlainTextResponse(text, code), site_of(request))
    return _headers(render(request, "error.html.j2", {"code": code, "text": text},
                           status=code), site_of(request))


def create_app(history: History, config: WebConfig | None = None) -> Starlette:
    """The dashboard over ``history``."""
    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        *pages.routes(),
        *docs.routes(),
        Mount("/static", StaticFiles(packages=[("upkeeper.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found},
                    middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])
    app.state.site = Site(history, config or WebConfig())
    return app

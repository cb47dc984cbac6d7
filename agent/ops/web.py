"""The operators' page and the station's local HTTP API, served by the daemon (`[web] listen`,
loopback by default): every printer in plain words with what to do, stock, jobs, upstream and the
alerts, live (server-sent events), in Bahasa Indonesia with an English switch.

Reading needs no login; acting (pause, resume, drain, acknowledge an alert, decide a held job)
needs the operator's PIN (agent/ops/web_auth.py) and the session's CSRF token. The API under /api/
runs the same operations as the control socket (`ControlPanel.handle`). Its contract is kept by
hand in agent/ops/station-api.openapi.json (docs/station-api.openapi.json links to it), served as
it is at /openapi.json, and checked against the running server by schemathesis in the tests.

Starlette alone, not FastAPI: FastAPI and pydantic cost the daemon ~14 MB of memory and ~0.2 s of
CPU at every start, for routing and JSON that Starlette already does. The server is uvicorn on a
thread of the daemon.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from agent.core.config import WebConfig
from agent.core.listen import ListenAddress
from agent.core.os_thread import daemon_thread
from agent.core.messages import word
from agent.ops.batch import latest_report
from agent.ops.web_auth import COOKIE, SESSION_S, Sessions, verify_pin
from agent.ops.web_view import page_view

if TYPE_CHECKING:
    from agent.ops.control_socket import ControlPanel

log = structlog.get_logger("web")

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
API_DOCUMENT = Path(__file__).with_name("station-api.openapi.json")
LANGS = ("id", "en")
ACTIONS = ("pause", "resume", "drain")
# How often the live view looks for a change; a change reaches the page within about this long.
WATCH_EVERY_S = 0.5
HEARTBEAT_S = 15.0


def create_app(panel: ControlPanel, web: WebConfig, language: str) -> Starlette:
    """The page and the API over `panel`. Plain `def` endpoints touch the journal or the panel:
    Starlette runs them in its threadpool, so a slow journal never stalls the event loop."""
    sessions = Sessions()

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang")
        return asked if asked in LANGS else language if language in LANGS else "id"

    def require_operator(request: Request) -> None:
        if not sessions.allows(request.cookies.get(COOKIE), request.headers.get("x-csrf-token")):
            raise HTTPException(403, "sign in with the operator's PIN on the page first")

    def context(request: Request, **extra: Any) -> dict[str, Any]:
        lang = lang_of(request)
        status = panel.status()
        alerts = [a.as_json(lang) for a in panel.alerts.current()]
        since = panel.upstream_offline_since
        failed = panel.journal.count_by_state().get("failed", 0)
        view = page_view(status, alerts, lang, offline_since=since.isoformat() if since else None, failed=failed,
                         held=panel.journal.held_jobs())
        session = sessions.get(request.cookies.get(COOKIE))
        return {"v": view, "signed_in": session is not None, "csrf": session.csrf if session else "",
                "pin_configured": web.operator_pin_hash is not None, "other_lang": "en" if lang == "id" else "id",
                "wrong_pin": False, "has_report": latest_report(panel.batch.reports_dir) is not None, **extra}

    def page(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(request, "page.html", context(request))

    def fragment(request: Request) -> Response:
        return TEMPLATES.TemplateResponse(request, "fragment.html", context(request))

    async def login(request: Request) -> Response:
        async with request.form() as form:
            pin = form.get("pin", "")
        # The PIN's hash takes a tenth of a second of CPU, and the page reads the journal: not on the loop.
        return await run_in_threadpool(sign_in, request, pin if isinstance(pin, str) else "")

    def sign_in(request: Request, pin: str) -> Response:
        if not verify_pin(pin, web.operator_pin_hash):
            log.warning("web-login-refused")
            return TEMPLATES.TemplateResponse(request, "page.html", context(request, wrong_pin=True), status_code=403)
        token, _ = sessions.open()
        log.info("web-login")
        answer = RedirectResponse(f"./?lang={lang_of(request)}", status_code=303)
        answer.set_cookie(COOKIE, token, max_age=int(SESSION_S), httponly=True, samesite="strict")
        return answer

    def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(COOKIE))
        answer = RedirectResponse("./", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    def report(request: Request) -> Response:
        latest = latest_report(panel.batch.reports_dir)
        if latest is None:
            return HTMLResponse(f"<p>{word('no-report', language)}</p>", status_code=404)
        return FileResponse(latest, media_type="text/html")

    def api_status(request: Request) -> Response:
        return JSONResponse(panel.status())

    def api_alerts(request: Request) -> Response:
        return JSONResponse([a.as_json(lang_of(request)) for a in panel.alerts.current()])

    def api_printer(request: Request) -> Response:
        require_operator(request)
        printer, action = request.path_params["printer"], request.path_params["action"]
        if action not in ACTIONS:
            raise HTTPException(404, f"no action {action!r}: pause, resume or drain")
        try:
            result = panel.handle({"cmd": action, "printer": printer})
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        log.info("web-printer-action", printer=printer, action=action)
        return JSONResponse(result)

    def api_ack(request: Request) -> Response:
        require_operator(request)
        return JSONResponse(panel.handle({"cmd": "alert-ack", "key": request.path_params["key"]}))

    def api_held(request: Request) -> Response:
        return JSONResponse(panel.handle({"cmd": "held"}))

    def api_job(request: Request) -> Response:
        require_operator(request)
        job_id, decision = request.path_params["job_id"], request.path_params["decision"]
        try:
            return JSONResponse(panel.handle({"cmd": "held-decide", "job_id": job_id, "decision": decision,
                                              "who": "operator-page"}))
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None

    async def api_events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            last = ""
            quiet = 0.0
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                digest = await asyncio.to_thread(_digest, panel)
                if digest != last:
                    last, quiet = digest, 0.0
                    yield f"event: changed\ndata: {digest}\n\n"
                elif quiet >= HEARTBEAT_S:
                    quiet = 0.0
                    yield ": heartbeat\n\n"
                await asyncio.sleep(WATCH_EVERY_S)
                quiet += WATCH_EVERY_S

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def api_document(request: Request) -> Response:
        return Response(_api_document(), media_type="application/json")

    return Starlette(routes=[
        _route("/", page, "GET"),
        _route("/fragment", fragment, "GET"),
        _route("/login", login, "POST"),
        _route("/logout", logout, "POST"),
        _route("/report", report, "GET"),
        _route("/api/status", api_status, "GET"),
        _route("/api/alerts", api_alerts, "GET"),
        _route("/api/printers/{printer}/{action}", api_printer, "POST"),
        _route("/api/alerts/{key}/ack", api_ack, "POST"),
        _route("/api/jobs/held", api_held, "GET"),
        _route("/api/jobs/{job_id}/{decision}", api_job, "POST"),
        _route("/api/events", api_events, "GET"),
        _route("/openapi.json", api_document, "GET"),
    ], exception_handlers={HTTPException: _plain_error})


def _route(path: str, endpoint: Callable[[Request], Any], method: str) -> Route:
    """A route answering `method` alone. Starlette would answer HEAD beside every GET; the station's
    routes have always answered it 405 (FastAPI's), and the API document lists no HEAD."""
    route = Route(path, endpoint, methods=[method])
    route.methods = {method}
    return route


async def _plain_error(request: Request, exc: Exception) -> Response:
    """Every refusal as JSON `{"detail": "..."}` with its status (and its headers: a 405's Allow),
    the shape scripts against the station's API have always read."""
    refusal = cast(HTTPException, exc)  # the handler of HTTPException alone
    return JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code, headers=refusal.headers)


@functools.cache
def _api_document() -> bytes:
    """The API's contract as kept by hand, read once, when first asked for."""
    return API_DOCUMENT.read_bytes()


def _digest(panel: ControlPanel) -> str:
    """A fingerprint of what the page shows, from what is cheap to read twice a second: the printer
    snapshots, the blanks in each hopper and the storeroom, the job counts, the board's version and
    upstream. No forecast is computed here: the page's full view is built only once this changes."""
    snapshots = panel.snapshots()
    blanks = [panel.journal.blanks_remaining(s.name) for s in snapshots]
    seen = json.dumps([[asdict(s) for s in snapshots], blanks, panel.journal.storeroom_remaining(),
                       panel.journal.count_by_state(),
                       panel.journal.outbox_backlog(), panel.alerts.version, bool(panel.station.intake.online)],
                      sort_keys=True, default=str)
    return hashlib.sha256(seen.encode()).hexdigest()[:16]


class _QuietServer(uvicorn.Server):
    """uvicorn, but not awake ten times a second to ask itself whether to stop (its main loop's
    0.1 s tick was half the idle daemon's CPU, docs/BENCHMARKS.md): it sleeps until `stop_soon`
    wakes it, and each second refreshes the Date header, as uvicorn's tick does."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while not await self.on_tick(0):  # tick 0: the one that refreshes the Date header
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass

    def stop_soon(self) -> None:
        """From any thread: stop serving now, not at the next second."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass  # the loop has ended already


class WebServer:
    """uvicorn on a thread of its own; `url` once it listens. A port that is taken is logged, and
    the station prints on without its page."""

    def __init__(self, app: Starlette, listen: ListenAddress) -> None:
        self.listen = listen
        self.url: str | None = None
        # ws="none": the page is kept live by server-sent events and opens no websocket (uvicorn would load a websocket library).
        self._server = _QuietServer(uvicorn.Config(app, host=listen.host, port=listen.port, log_level="warning",
                                                     access_log=False, lifespan="off", ws="none"))
        self._thread = daemon_thread("web", self._run)
        self._ready = threading.Event()

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        self._ready.wait(timeout)
        if self._server.started and self._server.servers:
            host, port = self._server.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}/"
            log.info("web-ready", url=self.url)
        else:
            log.error("web-unavailable", listen=self.listen.describe(),
                      remedy="another program holds that port: set [web] listen to a free one; printing goes on")

    def _run(self) -> None:
        async def serve() -> None:
            serving = asyncio.ensure_future(self._server.serve())
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.05)
            self._ready.set()
            await serving

        try:
            asyncio.run(serve())
        except (OSError, SystemExit) as exc:
            log.error("web-stopped", error=str(exc))
        finally:
            self._ready.set()

    def close(self) -> None:
        self._server.stop_soon()
        self._thread.join(timeout=10)

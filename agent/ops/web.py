"""The operators' page and the station's local HTTP API, served by the daemon (`[web] listen`,
loopback by default): every printer in plain words with what to do, stock, jobs, upstream and the
alerts, live (server-sent events), in Bahasa Indonesia with an English switch.

Reading needs no login; acting (pause, resume, drain, acknowledge an alert) needs the operator's
PIN (agent/ops/web_auth.py) and the session's CSRF token. The API under /api/ runs the same
operations as the control socket (`ControlPanel.handle`); FastAPI documents it at /openapi.json
(kept in docs/station-api.openapi.json). The server is uvicorn on a thread of the daemon.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from agent.core.config import WebConfig
from agent.core.listen import ListenAddress
from agent.core.messages import word
from agent.ops.batch import latest_report
from agent.ops.web_auth import COOKIE, SESSION_S, Sessions, verify_pin
from agent.ops.web_view import page_view

if TYPE_CHECKING:
    from agent.ops.control_socket import ControlPanel

log = structlog.get_logger("web")

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
LANGS = ("id", "en")
# How often the live view looks for a change; a change reaches the page within about this long.
WATCH_EVERY_S = 0.5
HEARTBEAT_S = 15.0


def create_app(panel: ControlPanel, web: WebConfig, language: str) -> FastAPI:
    app = FastAPI(title="printstation station API", version="1",
                  description="The operators' page and its local API: status, alerts and the printers' controls.")
    sessions = Sessions()

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang")
        return asked if asked in LANGS else language if language in LANGS else "id"

    def signed_in(request: Request) -> bool:
        return sessions.get(request.cookies.get(COOKIE)) is not None

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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "page.html", context(request))

    @app.get("/fragment", response_class=HTMLResponse, include_in_schema=False)
    def fragment(request: Request) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "fragment.html", context(request))

    @app.post("/login", include_in_schema=False)
    def login(request: Request, pin: str = Form("")) -> Any:
        if not verify_pin(pin, web.operator_pin_hash):
            log.warning("web-login-refused")
            return TEMPLATES.TemplateResponse(request, "page.html", context(request, wrong_pin=True), status_code=403)
        token, _ = sessions.open()
        log.info("web-login")
        answer = RedirectResponse(f"./?lang={lang_of(request)}", status_code=303)
        answer.set_cookie(COOKIE, token, max_age=int(SESSION_S), httponly=True, samesite="strict")
        return answer

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> RedirectResponse:
        sessions.close(request.cookies.get(COOKIE))
        answer = RedirectResponse("./", status_code=303)
        answer.delete_cookie(COOKIE)
        return answer

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    def report() -> Any:
        latest = latest_report(panel.batch.reports_dir)
        if latest is None:
            return HTMLResponse(f"<p>{word('no-report', language)}</p>", status_code=404)
        return FileResponse(latest, media_type="text/html")

    @app.get("/api/status", summary="The station's status (the same document as `printstation status --json`)")
    def api_status() -> dict:
        return panel.status()

    @app.get("/api/alerts", summary="The alerts on the board, in the station's language or ?lang=")
    def api_alerts(request: Request) -> list[dict]:
        return [a.as_json(lang_of(request)) for a in panel.alerts.current()]

    @app.post("/api/printers/{printer}/{action}", summary="pause, resume or drain a printer (operator only)")
    def api_printer(printer: str, action: str, request: Request) -> dict:
        require_operator(request)
        if action not in ("pause", "resume", "drain"):
            raise HTTPException(404, f"no action {action!r}: pause, resume or drain")
        try:
            result = panel.handle({"cmd": action, "printer": printer})
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        log.info("web-printer-action", printer=printer, action=action)
        return result

    @app.post("/api/alerts/{key}/ack", summary="acknowledge an alert (operator only)")
    def api_ack(key: str, request: Request) -> dict:
        require_operator(request)
        return panel.handle({"cmd": "alert-ack", "key": key})

    @app.get("/api/jobs/held", summary="jobs held for a person to decide (ids, since when, why)")
    def api_held() -> list[dict]:
        return panel.handle({"cmd": "held"})

    @app.post("/api/jobs/{job_id}/{decision}",
              summary="decide a held job: print-again, printed (the card is in the output tray) or cancel (operator only)")
    def api_job(job_id: str, decision: str, request: Request) -> dict:
        require_operator(request)
        try:
            return panel.handle({"cmd": "held-decide", "job_id": job_id, "decision": decision, "who": "operator-page"})
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/api/events", summary="server-sent events: `changed` whenever what the page shows changes")
    async def api_events(request: Request) -> StreamingResponse:
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

    @app.exception_handler(HTTPException)
    async def plain_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    return app


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

    def __init__(self, app: FastAPI, listen: ListenAddress) -> None:
        self.listen = listen
        self.url: str | None = None
        # ws="none": the page is kept live by server-sent events and opens no websocket (uvicorn would load a websocket library).
        self._server = _QuietServer(uvicorn.Config(app, host=listen.host, port=listen.port, log_level="warning",
                                                     access_log=False, lifespan="off", ws="none"))
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
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

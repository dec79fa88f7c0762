"""The FastAPI app: the page, the JSON API, and error handlers that answer every bad request with one line.

    POST /api/jobs                     a recording to generate -> 202 and the job (429 + Retry-After when full)
    GET  /api/jobs/{id}                its state and progress
    GET  /api/jobs/{id}/file?format=F  the recording as F (GET /api/models lists the formats)
    GET  /api/jobs/{id}/preview.png    the recording in clinical style
    GET  /api/models                   the model cards, presets and formats
    GET  /                             the page (serve/static/)
Errors are `{"detail": "<field>: <what>"}`: 422 for bad input (FastAPI's own validation errors are rewritten to
that line), 413 for a body over 64 KiB, 404 for an unknown or expired job, 409 for a file of a job that is not done, 429 when the queue
is full, and 500 with a generic line (the traceback goes to the server log, never to the client).
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dataloader.duration import parse_duration
from dataloader.errors import UserError

from .catalog import ModelEntry, find_models
from .jobs import Job, JobStore, QueueFull
from .render import PREVIEW, Recording
from .schemas import Catalog, ErrorBody, JobRequest, JobState, ModelCard, path_like
from .settings import DEFAULT_PRESET, PRESETS, Settings, formats

log = logging.getLogger("serve")
STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}  # the only files /static/ serves
PAGE_CSP = "default-src 'self'; img-src 'self' blob:; object-src 'none'; frame-ancestors 'none'"
MAX_BODY = 64 * 1024  # bytes of a request body: a job request is a few hundred


class ApiError(Exception):
    """A refused request: HTTP `status`, `{"detail": "<field>: <what>"}`."""

    def __init__(self, status: int, field: str, what: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(f"{field}: {what}")
        self.status, self.headers = status, headers


def _one_line(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors -> "<field>: <message>" for the first (the body's fields by name)."""
    err = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "json_invalid":
        return f"body: not valid JSON ({err.get('ctx', {}).get('error', 'malformed')})"
    if err.get("type") == "model_attributes_type" or not loc:
        return f"body: {msg}"
    return f"{'.'.join(loc)}: {msg[:1].lower() + msg[1:]}"


def _install_handlers(app: FastAPI) -> None:
    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        size = request.headers.get("content-length", "0")
        if not size.isdigit() or int(size) > MAX_BODY:
            return JSONResponse({"detail": f"body: larger than {MAX_BODY} bytes (or a bad Content-Length)"},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": f"{request.url.path}: {exc.detail}"}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)


def _check_length(entry: ModelEntry, text: str, max_seconds: float) -> tuple[float, int]:
    """(seconds, samples) of the `length` field, or ApiError 422. A recording longer than the model's window
    is continued window by window (diffusion/continuation.py); the app's --max_seconds bounds it."""
    from diffusion.long_file import n_samples_of

    try:
        seconds = parse_duration(text, "length")
        if seconds > max_seconds:
            raise UserError("length", f"{seconds:g} s is over the limit of {max_seconds:g} s "
                                      "(the app's --max_seconds)")
        return seconds, n_samples_of(seconds, entry.meta.data.fs, "length")
    except UserError as e:
        raise ApiError(422, "length", e.what) from None


def _check_labels(entry: ModelEntry, labels: dict[str, str]) -> tuple[int, ...]:
    """One class code per label column of the model, or ApiError 422 naming the label."""
    spec = entry.meta.data.label_spec()
    names = [s["name"] for s in spec]
    for k in labels:
        if k not in names:
            raise ApiError(422, f"labels.{k}", f"unknown label (model {entry.name!r} has: {', '.join(names) or 'none'})")
    codes = []
    for s in spec:
        if s["name"] not in labels:
            raise ApiError(422, f"labels.{s['name']}", f"missing (one of: {', '.join(s['classes'])})")
        c = labels[s["name"]]
        if c not in s["classes"]:
            raise ApiError(422, f"labels.{s['name']}", f"unknown class {c!r} (one of: {', '.join(s['classes'])})")
        codes.append(s["classes"].index(c))
    return tuple(codes)


def _recording(app: FastAPI, req: JobRequest) -> tuple[Recording, float]:
    models: dict[str, ModelEntry] = app.state.models
    entry = models.get(req.model)
    if entry is None:
        raise ApiError(422, "model", f"unknown model {req.model!r} (one of: {', '.join(models)})")
    if req.preset not in PRESETS:
        raise ApiError(422, "preset", f"unknown preset {req.preset!r} (one of: {', '.join(PRESETS)})")
    seconds, n = _check_length(entry, req.length, app.state.settings.max_seconds)
    codes = _check_labels(entry, req.labels)
    return Recording(entry, codes, n, req.seed, PRESETS[req.preset]), seconds


def _state(app: FastAPI, job: Job) -> JobState:
    rec, base = job.rec, f"/api/jobs/{job.id}"
    done = job.state == "done"
    spec = rec.entry.meta.data.label_spec()
    return JobState(id=job.id, state=job.state, progress=round(job.progress, 4), error=job.error or None,  # type: ignore[arg-type]
                    model=rec.entry.name, seconds=rec.n_samples / float(rec.entry.meta.data.fs),
                    n_samples=rec.n_samples, seed=rec.seed,
                    labels={s["name"]: s["classes"][c] for s, c in zip(spec, rec.codes)},
                    preset=next(k for k, p in PRESETS.items() if p == rec.preset),
                    preview=f"{base}/{PREVIEW}" if done else None,
                    files={f: f"{base}/file?format={f}" for f in formats()} if done else {},
                    expires_in_s=app.state.jobs.expires_in(job))


def _finished_job(app: FastAPI, job_id: str) -> Job:
    job = app.state.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "job", "unknown id (never made, or its files expired)")
    if job.state != "done":
        raise ApiError(409, "job", f"not done (state {job.state}{': ' + job.error if job.error else ''})")
    return job


ERRORS = {s: {"model": ErrorBody} for s in (404, 409, 422, 429, 500)}


def _install_api(app: FastAPI) -> None:
    @app.post("/api/jobs", status_code=202, response_model=JobState, responses=ERRORS, tags=["jobs"])
    def create_job(req: JobRequest, response: Response) -> JobState:
        """Queue a recording; poll GET /api/jobs/{id} until `state` is done or failed."""
        rec, _ = _recording(app, req)
        try:
            job = app.state.jobs.submit(rec)
        except QueueFull as e:
            raise ApiError(429, "queue", f"full ({app.state.settings.queue} waiting); retry in {e.retry_after} s",
                           {"Retry-After": str(e.retry_after)}) from None
        response.headers["Location"] = f"/api/jobs/{job.id}"
        return _state(app, job)

    @app.get("/api/jobs/{job_id}", response_model=JobState, responses=ERRORS, tags=["jobs"])
    def get_job(job_id: str) -> JobState:
        """A job's state and progress (0 to 1); when done, the URLs of its preview and files."""
        job = app.state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "job", "unknown id (never made, or its files expired)")
        return _state(app, job)

    @app.get("/api/jobs/{job_id}/file", response_class=FileResponse, responses=ERRORS, tags=["jobs"])
    def get_file(job_id: str, format: str = Query(max_length=40, description="a format of GET /api/models")) -> Any:
        """The recording in one format (HDF5 as written by generate.py; the exports zipped)."""
        known = formats()
        if path_like(format) or format not in known:
            raise ApiError(422, "format", f"unknown format {format[:40]!r} (one of: {', '.join(known)})")
        job = _finished_job(app, job_id)
        path = app.state.jobs.file(job, format)
        name = f"{job.rec.entry.name}-{job.id[:8]}{known[format].suffix}"
        return FileResponse(path, media_type=known[format].media_type, filename=name)

    @app.get("/api/jobs/{job_id}/preview.png", response_class=FileResponse, responses=ERRORS, tags=["jobs"])
    def get_preview(job_id: str) -> Any:
        """The recording drawn in clinical style (at most one model window of it)."""
        job = _finished_job(app, job_id)
        return FileResponse(job.folder / PREVIEW, media_type="image/png")

    @app.get("/api/models", response_model=Catalog, tags=["models"])
    def get_models() -> Catalog:
        """The model cards, the quality presets and the download formats."""
        s: Settings = app.state.settings
        cards = [ModelCard(**e.card(), max_seconds=s.max_seconds)
                 for e in app.state.models.values()]
        return Catalog(models=cards, default_preset=DEFAULT_PRESET,
                       presets=[{"name": k, "sampler": p.sampler, "steps": p.steps, "description": p.description}
                                for k, p in PRESETS.items()],  # type: ignore[misc]
                       formats=[{"name": k, "suffix": f.suffix, "description": f.description}
                                for k, f in formats().items()])  # type: ignore[misc]


def _install_page(app: FastAPI) -> None:
    page = {name: (STATIC / name).read_text(encoding="utf-8") for name in ("index.html", *PAGE_FILES)}
    headers = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page["index.html"], headers=headers)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in PAGE_FILES:  # a fixed list: nothing from the request ever becomes a path
            raise ApiError(404, "static", "no such file")
        return Response(page[name], media_type=PAGE_FILES[name], headers=headers)


def create_app(settings: Settings, models: Optional[dict[str, ModelEntry]] = None) -> FastAPI:
    """The app for `settings` (models found from settings.models unless given). Its job folder is made inside
    settings.work_dir (or the system temp folder) and deleted when the app shuts down."""
    from accelerate import PartialState

    found = models if models is not None else find_models(settings.models)
    root = Path(tempfile.mkdtemp(prefix="physiodiff-serve-", dir=settings.work_dir))
    store = JobStore(root, settings.workers, settings.queue, settings.expire_minutes * 60.0, PartialState().device)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.start_sweeper()
        try:
            yield
        finally:
            store.close()
            import shutil

            shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(title="physiodiff", version="1", lifespan=lifespan,
                  description="Synthetic physiological recordings from trained diffusion models. Every error "
                              "is `{\"detail\": \"<field>: <what>\"}`.")
    app.state.settings, app.state.models, app.state.jobs, app.state.root = settings, found, store, root
    _install_handlers(app)
    _install_api(app)
    _install_page(app)
    return app

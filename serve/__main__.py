"""Serve the web app: a page and a JSON API that generate synthetic recordings from trained models.

    python -m serve --models models/
    python -m serve --models run/model.safetensors other.safetensors --port 8080 --max_seconds 3600

Open http://127.0.0.1:8000/ for the page; the API is described at /docs (OpenAPI: /openapi.json). Only
this machine can reach the app unless --host says otherwise. Jobs run in one process on --workers threads;
their files live in a folder of the app's own (inside --work_dir) and are deleted --expire_minutes after the
job ends, and all of them when the app stops.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from dataloader.cli import make_parser, run_main
from dataloader.errors import UserError

from .settings import Settings, default_workers


def _parser():  # type: ignore[no-untyped-def]
    doc = __doc__.split("\n\n")
    p = make_parser("python -m serve", "\n\n".join(doc[:2]), epilog=doc[2])
    p.add_argument("--models", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="model files (model.safetensors) or folders searched for *.safetensors; a model is "
                        "named after its folder when the file is model.safetensors, else after the file")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 lets every machine that reaches this one in")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                   help="jobs generated at once (threads in this one process; default: one per core)")
    p.add_argument("--queue", type=int, default=16, metavar="N",
                   help="jobs that may wait beyond the running ones; one more is refused with HTTP 429 and "
                        "a Retry-After")
    p.add_argument("--max_seconds", type=float, default=7200.0, metavar="S",
                   help="the longest recording a request may ask for, in seconds (today also at most one "
                        "window of the model)")
    p.add_argument("--expire_minutes", type=float, default=60.0, metavar="M",
                   help="a finished job's files are deleted this long after it ends")
    p.add_argument("--work_dir", type=Path, default=None, metavar="DIR",
                   help="folder in which the app makes its own folder for job files (default: the system "
                        "temp folder)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads per operation (default: cores / --workers, at least 1)")
    return p


def settings_from_args(argv: Sequence[str] | None) -> Settings:
    """Parse and check the command line (UserError naming the option)."""
    a = _parser().parse_args(argv)
    for name, v, lo in (("--port", a.port, 1), ("--workers", a.workers, 1), ("--queue", a.queue, 0)):
        if v < lo:
            raise UserError(name, f"must be >= {lo} (got {v})")
    if a.port > 65535:
        raise UserError("--port", f"must be <= 65535 (got {a.port})")
    if a.threads is not None and a.threads < 1:
        raise UserError("--threads", f"must be >= 1 (got {a.threads})")
    for name, v in (("--max_seconds", a.max_seconds), ("--expire_minutes", a.expire_minutes)):
        if not v > 0 or v == float("inf"):
            raise UserError(name, f"must be a positive number (got {v})")
    if a.work_dir is not None and not a.work_dir.is_dir():
        raise UserError("--work_dir", f"{str(a.work_dir)!r} is not a folder")
    return Settings(models=list(a.models), host=a.host, port=a.port, workers=a.workers, queue=a.queue,
                    max_seconds=a.max_seconds, expire_minutes=a.expire_minutes, work_dir=a.work_dir,
                    threads=a.threads)


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from_args(argv)
    from .app import create_app
    from .catalog import find_models

    models = find_models(settings.models)  # before importing uvicorn: a bad --models is one line, exit 2
    import torch
    import uvicorn

    torch.set_num_threads(settings.torch_threads())  # the workers share the cores (settings.py)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(settings, models)
    print(f"serving {len(models)} model(s) ({', '.join(models)}) on http://{settings.host}:{settings.port}/ "
          f"with {settings.workers} worker(s) x {torch.get_num_threads()} thread(s)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


if __name__ == "__main__":
    run_main(main)

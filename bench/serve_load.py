"""Load on the web app: concurrent clients on loopback against a real `python -m serve` (uvicorn).

    python -m bench.serve_load [--models DIR_OR_FILE] [--clients 20] [--rounds 2] [--workers 2] [--queue 4]

Each client asks for one recording (its own seed), is refused with 429 or accepted; an accepted job is polled
until it ends and its HDF5 file is downloaded and read back (dataloader.synthetic.read_synthetic: shape,
labels, seed). A refused client waits its Retry-After and asks again, so every client ends with a recording.
Checked: every answer is 202 or 429 (nothing else), every accepted job ends done with a valid file (nothing
lost). The server's resident memory (VmRSS) is sampled every 0.2 s; a second round shows whether it grows.
Without --models a tiny model is trained first (seconds). Writes bench/results/serve_load.json and .md.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from dataloader.cli import make_parser, run_main

from .machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET (or a JSON POST); HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _client(base: str, request: dict[str, Any], work: Path, out: dict[str, Any]) -> None:
    """One client: ask until accepted (honouring Retry-After), poll, download the HDF5 file, read it back."""
    from dataloader.synthetic import read_synthetic

    t0, statuses = time.perf_counter(), []
    while True:
        status, headers, body = _call(base + "/api/jobs", request)
        statuses.append(status)
        if status != 429:
            break
        time.sleep(float(headers.get("Retry-After", headers.get("retry-after", "1"))))
    out.update(statuses=statuses, accepted=status == 202)
    if status != 202:
        return
    job = json.loads(body)
    while job["state"] not in ("done", "failed"):
        time.sleep(0.2)
        job = json.loads(_call(f"{base}/api/jobs/{job['id']}")[2])
    out.update(state=job["state"], seconds=round(time.perf_counter() - t0, 2))
    if job["state"] == "done":
        status, _, data = _call(base + job["files"]["hdf5"])
        path = work / f"{job['id']}.h5"
        path.write_bytes(data)
        samples, _, attrs = read_synthetic(path)
        out["valid"] = status == 200 and samples.shape[0] == 1 and attrs["seed"] == request["seed"]


def _rss_sampler(pid: int, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    t0 = time.perf_counter()
    while not stop.wait(0.2):
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    samples.append((time.perf_counter() - t0, int(line.split()[1]) * 1024))
        except OSError:
            return


def _round(base: str, model: dict[str, Any], n: int, seed0: int, work: Path) -> list[dict[str, Any]]:
    labels = {s["name"]: s["classes"][0] for s in model["labels"]}
    length = f"{min(model['max_seconds'], model['window_seconds']):g}"
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    threads = [threading.Thread(target=_client, args=(base, {"model": model["name"], "length": length,
                                                            "labels": labels, "seed": seed0 + i,
                                                            "preset": "draft"}, work, results[i]))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _tiny_model(work: Path) -> Path:
    from tests.tiny_run import make_tiny_project, run_train, tiny_config

    cfg = make_tiny_project(work / "project")
    run_train(tiny_config(cfg, "train.max_steps=4"))
    return cfg.parent / "run" / "model.safetensors"


def _start(models: str, a: Any, work: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "serve", "--models", models, "--port", str(port), "--workers", str(a.workers),
           "--queue", str(a.queue), "--work_dir", str(work)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            _call(base + "/api/models")
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"error: the server exited ({' '.join(cmd)})")
            time.sleep(0.1)
    raise SystemExit("error: the server did not start in 60 s")


def _summary(rounds: list[list[dict[str, Any]]], rss: list[tuple[float, int]], ends: list[float]) -> dict[str, Any]:
    flat = [r for rs in rounds for r in rs]
    statuses = [s for r in flat for s in r["statuses"]]
    peak_per_round = [max([b for t, b in rss if lo <= t < hi] or [0]) for lo, hi in zip([0.0] + ends[:-1], ends)]
    return {"clients": len(flat), "requests": len(statuses), "accepted": statuses.count(202),
            "refused_429": statuses.count(429), "other_status": sorted({s for s in statuses if s not in (202, 429)}),
            "done_valid": sum(bool(r.get("valid")) for r in flat),
            "lost": sum(1 for r in flat if r.get("accepted") and not r.get("valid")),
            "client_seconds_max": max(r.get("seconds", 0) for r in flat),
            "rss_mib_first": round(rss[0][1] / 2**20, 1) if rss else None,
            "rss_mib_peak_per_round": [round(b / 2**20, 1) for b in peak_per_round],
            "rss_mib_last": round(rss[-1][1] / 2**20, 1) if rss else None}


def _markdown(res: dict[str, Any]) -> str:
    s, a = res["summary"], res["args"]
    return "\n".join([
        "# Web app under load (bench/serve_load.py)", "",
        f"{s['clients']} clients in {a['rounds']} round(s) of {a['clients']} against `python -m serve --workers "
        f"{a['workers']} --queue {a['queue']}` on loopback; model `{res['model']}`, length {res['length_s']:g} s, "
        "preset draft. Machine: " + f"{res['machine']['cpu']}, {res['machine']['cores']} cores, commit "
        f"{res['machine']['commit']}.", "",
        "| requests | 202 accepted | 429 refused | other | done + valid file | lost | slowest client (s) |",
        "|---|---|---|---|---|---|---|",
        f"| {s['requests']} | {s['accepted']} | {s['refused_429']} | {s['other_status'] or 'none'} | "
        f"{s['done_valid']} | {s['lost']} | {s['client_seconds_max']} |", "",
        f"Server RSS: {s['rss_mib_first']} MiB at the first sample, peak per round "
        f"{', '.join(map(str, s['rss_mib_peak_per_round']))} MiB, {s['rss_mib_last']} MiB at the end.", "",
        "Reproduce: `python -m bench.serve_load " + " ".join(res["argv"]) + "`", ""])


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m bench.serve_load", __doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="model file or folder (default: train a tiny model first)")
    p.add_argument("--clients", type=int, default=20, help="concurrent clients per round")
    p.add_argument("--rounds", type=int, default=2, help="rounds of --clients (memory growth shows in round 2)")
    p.add_argument("--workers", type=int, default=2, help="the server's --workers")
    p.add_argument("--queue", type=int, default=4, help="the server's --queue (small, so that 429s happen)")
    p.add_argument("--out", default=str(RESULTS / "serve_load"), help="output path without suffix")
    a = p.parse_args(argv)
    from dataloader.atomic import write_text_atomic

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        work = Path(tmp)
        models = a.models or str(_tiny_model(work))
        proc, base = _start(models, a, work)
        rss: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(proc.pid, rss, stop), daemon=True)
        sampler.start()
        t0, ends, rounds = time.perf_counter(), [], []
        try:
            model = json.loads(_call(base + "/api/models")[2])["models"][0]
            for r in range(a.rounds):
                rounds.append(_round(base, model, a.clients, 1000 * r, work))
                ends.append(time.perf_counter() - t0)
        finally:
            stop.set()
            sampler.join()
            proc.terminate()
            proc.wait(timeout=60)
    res = {"args": vars(a), "argv": list(argv or sys.argv[1:]), "model": model["name"],
           "length_s": min(model["max_seconds"], model["window_seconds"]), "machine": machine_info(),
           "summary": _summary(rounds, rss, ends), "clients": rounds}
    write_text_atomic(a.out + ".json", json.dumps(res, indent=1) + "\n")
    write_text_atomic(a.out + ".md", _markdown(res))
    print(_markdown(res))
    ok = res["summary"]["lost"] == 0 and not res["summary"]["other_status"]
    return 0 if ok else 1


if __name__ == "__main__":
    run_main(main)

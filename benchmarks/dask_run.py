#!/usr/bin/env python
"""Times `moons-vae run` on a Dask cluster beside the same run on local processes, and checks the results agree.

A scheduler and N one-thread workers are started on 127.0.0.1 (as `tests/test_dask.py` does); the chosen params files
(default: the training runs and the sweeps of the report, with `--profile quick`) run once with
`--scheduler tcp://127.0.0.1:PORT` and once with `--workers N` locally, each into a fresh temporary runs and data
folder (so that neither finds the other's memo), in the order given by --order (the first pays for cold caches:
UMAP's compilation, the page cache; run both orders to see it). Reports both wall times,
their ratio, and whether every run's metrics.json is identical; merges the numbers into --out (JSON) and the .md
beside it.

    .venv/bin/python benchmarks/dask_run.py                       # quick profile, 2 workers
    .venv/bin/python benchmarks/dask_run.py --profile full --workers 2 params/vae.yaml params/sweep_prob.yaml
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_OUT, ROOT, load_results, machine_info, save_results  # noqa: E402

DEFAULT_PARAMS = ["vae.yaml", "cvae.yaml", "vae_textbook.yaml", "vae_high_beta.yaml", "cvae_latent8.yaml", "sweep_prob.yaml", "sweep_arch.yaml"]


def start_cluster(tmp: Path, workers: int):
    "A scheduler and `workers` one-thread workers on 127.0.0.1, started in the repository root; (address, processes)."
    bin_ = Path(sys.executable).parent
    sched_file = tmp / "scheduler.json"
    procs = [subprocess.Popen([str(bin_ / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(240):
        if sched_file.is_file(): break
        time.sleep(0.5)
    address = json.loads(sched_file.read_text())["address"]
    procs += [subprocess.Popen([str(bin_ / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    from distributed import Client
    with Client(address, timeout=60) as c: c.wait_for_workers(workers, timeout=240)
    return address, procs


def run(params: list[Path], runs: Path, data: Path, extra: list[str]) -> float:
    cmd = [str(Path(sys.executable).parent / "moons-vae"), "run", *map(str, params), "--runs-dir", str(runs), "--data-dir", str(data), "--quiet", *extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0: raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return round(time.perf_counter() - t, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("params", nargs="*", help=f"params files (default: {', '.join(DEFAULT_PARAMS)} of params/)")
    p.add_argument("--profile", default="quick", help="`moons-vae run --profile` ('full': none); default: %(default)s")
    p.add_argument("--workers", type=int, default=2, help="Dask workers, and local worker processes (default: %(default)s)")
    p.add_argument("--order", choices=("dask-first", "local-first"), default="dask-first", help="which engine runs first (default: %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON to merge into (markdown next to it); default: %(default)s")
    a = p.parse_args(argv)
    if a.workers < 1: p.error(f"--workers={a.workers} must be >= 1")
    params = [Path(x).resolve() for x in a.params] or [ROOT / "params" / n for n in DEFAULT_PARAMS]
    missing = [str(x) for x in params if not x.is_file()]
    if missing: p.error(f"params files not found: {missing}")
    extra = [] if a.profile == "full" else ["--profile", a.profile]
    tmp = Path(tempfile.mkdtemp(prefix="moons_vae_dask_"))
    try:
        def on_dask():
            address, procs = start_cluster(tmp, a.workers)
            try:
                print(f"dask: {len(params)} params files, {a.workers} workers at {address}", flush=True)
                t = run(params, tmp / "runs_dask", tmp / "data_dask", extra + ["--scheduler", address])
                print(f"  on the cluster: {t} s", flush=True)
                return t
            finally:
                for q in procs: q.terminate()
                for q in procs: q.wait(timeout=60)
        def on_local():
            t = run(params, tmp / "runs_local", tmp / "data_local", extra + ["--workers", str(a.workers)])
            print(f"  local processes: {t} s", flush=True)
            return t
        if a.order == "dask-first": t_dask, t_local = on_dask(), on_local()
        else: t_local, t_dask = on_local(), on_dask()
        same = {x.stem: json.loads((tmp / "runs_dask" / x.stem / "metrics.json").read_text())
                == json.loads((tmp / "runs_local" / x.stem / "metrics.json").read_text()) for x in params}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = load_results(a.out)
    results["dask"] = dict(command=" ".join([".venv/bin/python", "benchmarks/dask_run.py", *(sys.argv[1:] if argv is None else argv)]),
                           date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine=machine_info(), profile=a.profile, workers=a.workers, order=a.order,
                           params_files=[x.name for x in params], dask_seconds=t_dask, local_seconds=t_local,
                           ratio_local_to_dask=t_local / t_dask, identical_metrics=same)
    j, md = save_results(results, a.out)
    print(f"  local / dask = {t_local / t_dask:.2f}; identical metrics: {all(same.values())} {'' if all(same.values()) else same}\nwrote {j} and {md}")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The cluster engine: a real Dask scheduler and two one-thread workers on 127.0.0.1 run the smoke experiment and a small
sweep, and their results are identical to the local runner's."""
import json
import subprocess
import time

import yaml

from conftest import ROOT, tool

SWEEP = {"notebook": "nbs/sweep_prob.ipynb", "n_samples": 200, "noise": 0.1, "latent_dim": 4, "encoder_hidden": 8,
         "decoder_hidden": 16, "batch_size": 64, "n_points": 3, "max_epochs": 6, "min_epochs": 1, "eval_K": 8, "workers": 1}


def _cluster(tmp_path):
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([tool("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(120):
        if sched_file.is_file(): break
        time.sleep(0.5)
    address = json.loads(sched_file.read_text())["address"]
    procs += [subprocess.Popen([tool("dask"), "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
    from distributed import Client
    with Client(address, timeout=60) as c: c.wait_for_workers(2, timeout=120)
    return address, procs


def _run(params, runs, data, *extra):
    r = subprocess.run([tool("moons-vae"), "run", *map(str, params), "--runs-dir", str(runs), "--data-dir", str(data), "--quiet", *extra],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def _untimed(rows):
    drop = ("seconds", "wall_time_s", "duration")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def test_dask_scheduler_gives_the_local_results(tmp_path):
    (tmp_path / "sweep_small.yaml").write_text(yaml.safe_dump(SWEEP))
    params = [ROOT / "tests" / "smoke.yaml", tmp_path / "sweep_small.yaml"]
    address, procs = _cluster(tmp_path)
    try:
        out = _run(params, tmp_path / "runs_dask", tmp_path / "data_dask", "--scheduler", address)
    finally:
        for p in procs: p.terminate()
        for p in procs: p.wait(timeout=60)
    assert out.count(" ran ") == 2, out
    _run(params, tmp_path / "runs_local", tmp_path / "data_local")     # separate data (and memo) folders: trained again
    for name in ("smoke", "sweep_small"):
        a, b = (json.loads((tmp_path / d / name / "metrics.json").read_text()) for d in ("runs_dask", "runs_local"))
        assert a == b, name
    a, b = (json.loads((tmp_path / d / "sweep_small" / "points.json").read_text()) for d in ("runs_dask", "runs_local"))
    assert len(a) == 2 * SWEEP["n_points"] and _untimed(a) == _untimed(b)


def test_bad_scheduler_address_is_a_clear_error(tmp_path):
    r = subprocess.run([tool("moons-vae"), "run", str(ROOT / "tests" / "smoke.yaml"), "--runs-dir", str(tmp_path / "r"),
                        "--scheduler", "localhost:8786", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "scheduler='localhost:8786' must look like tcp://HOST:PORT" in r.stderr, r.stderr
    assert not (tmp_path / "r" / "smoke").exists()

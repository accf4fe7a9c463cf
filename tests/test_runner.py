"""The experiment notebook under papermill and the runner, end to end on the smoke config."""
import json
import os
import stat
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import ROOT, tool

SMOKE = ROOT / "tests" / "smoke.yaml"


def papermill(tmp_path, *args):
    out = tmp_path / "out.ipynb"
    return subprocess.run([tool("papermill"), "nbs/train.ipynb", str(out), *args, "-p", "data_dir", str(tmp_path / "data")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_papermill_smoke_with_int_beta(tmp_path):
    run = tmp_path / "run"
    r = papermill(tmp_path, "-f", str(SMOKE), "-p", "beta", "4", "-p", "out_dir", str(run))
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["beta"] == 4.0 and cfg["n_samples"] == 200          # -p beta 4 (an int) reached the run as 4.0
    assert {"model.pt", "config.json", "history.json", "metrics.json", "provenance.json"} <= {p.name for p in run.iterdir()}
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["torch_version"].startswith("2.13") and prov["seed"] == 42 and prov["wall_time_s"] > 0
    nb = json.loads((tmp_path / "out.ipynb").read_text())
    assert "parameters" in nb["cells"][0]["metadata"]["tags"]
    assert "injected-parameters" in nb["cells"][1]["metadata"]["tags"]


def test_papermill_smoke_learned_decoder_variance(tmp_path):
    "A calibrated run end to end: the learned variance reaches the run folder and the likelihood metrics are there."
    run = tmp_path / "run"
    r = papermill(tmp_path, "-f", str(SMOKE), "-p", "decoder_var", "learned", "-p", "out_dir", str(run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["decoder_var"] == "learned"
    m = json.loads((run / "metrics.json").read_text())
    assert m["decoder_var_learned"] and len(m["decoder_var"]) == 2 and all(v > 0 for v in m["decoder_var"])
    assert m["test_nll_gap"] > -0.05                 # no model beats the true density on average (beyond estimation noise)
    assert m["test_nll"] < -m["iwae"] + 0.05         # and the likelihood estimate is at least the IWAE bound
    # thin-tube approximation of the true NLL at noise 0.1: log(2 pi) + log(sqrt(2 pi) 0.1) + 1/2 (half per moon, 1/pi along the arc)
    assert m["test_nll_true"] == pytest.approx(math.log(2 * math.pi) + math.log(math.sqrt(2 * math.pi) * 0.1) + 0.5, abs=0.1)
    assert m["samples_include_decoder_noise"] and 0 <= m["samples_on_support"] <= 1


@pytest.mark.parametrize("args, message", [
    (["-p", "betta", "4"], "unknown parameter(s) ['betta']"),
    (["-p", "decoder_var", "0"], "decoder_var=0 is invalid; allowed: a finite number > 0"),
    (["-p", "decoder_var", "-1.5"], "decoder_var=-1.5 is invalid"),
    (["-p", "decoder_var", "fixed"], "decoder_var='fixed' is invalid"),
    (["-p", "latent_dim", "2.5"], "latent_dim=2.5 has type float, expected int"),
    (["-p", "beta", "-1"], "beta=-1 is out of range"),
    (["-p", "eps_w", "0"], "eps_w=0 is out of range"),
])
def test_papermill_rejects_bad_parameters(tmp_path, args, message):
    run = tmp_path / "run"
    r = papermill(tmp_path, "-f", str(SMOKE), *args, "-p", "out_dir", str(run))
    assert r.returncode != 0
    assert message in r.stderr + r.stdout
    assert not run.exists()                                         # no run folder written


def moons_vae(cwd, *args):
    return subprocess.run([tool("moons-vae"), "run", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def strip_timing(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_runner_cache_force_failure_and_determinism(tmp_path):
    params, runs, data = tmp_path / "params", tmp_path / "runs", tmp_path / "data"
    params.mkdir()
    shutil.copy(SMOKE, params / "smoke.yaml")
    other = yaml.safe_load(SMOKE.read_text()) | {"model": "cvae"}
    (params / "smoke_cvae.yaml").write_text(yaml.safe_dump(other))
    common = ["--runs-dir", str(runs), "--data-dir", str(data), "--quiet"]
    files = [str(params / "smoke.yaml"), str(params / "smoke_cvae.yaml")]

    # first run: both execute (two workers), each run folder is complete and carries its hash
    r = moons_vae(ROOT, *files, *common, "--workers", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("smoke", "smoke_cvae"):
        assert {"run.ipynb", "model.pt", "metrics.json", "cache.json"} <= {p.name for p in (runs / name).iterdir()}
    assert r.stdout.count(" ran ") == 2
    # the usual permissions (umask 022 in the test environment), not mkstemp's 0600/0700
    umask = os.umask(0); os.umask(umask)
    assert stat.S_IMODE((runs / "smoke").stat().st_mode) == 0o777 & ~umask
    for f in (runs / "smoke").iterdir(): assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f
    first_metrics = json.loads((runs / "smoke" / "metrics.json").read_text())
    first_history = json.loads((runs / "smoke" / "history.json").read_text())

    # nothing changed: a cache hit for both
    r = moons_vae(ROOT, *files, *common)
    assert r.returncode == 0 and r.stdout.count(" cached ") == 2, r.stdout

    # one params file changed: only that one reruns
    (params / "smoke_cvae.yaml").write_text(yaml.safe_dump(other | {"beta": 2.0}))
    r = moons_vae(ROOT, *files, *common, "--workers", "1")
    assert r.returncode == 0
    lines = {l.split()[0]: l.split()[1] for l in r.stdout.splitlines()[2:] if l.strip()}
    assert lines == {"smoke": "cached", "smoke_cvae": "ran"}, r.stdout

    # --force re-executes the notebook, but the trained model comes from the memo (what a change to figures does)
    r = moons_vae(ROOT, str(params / "smoke.yaml"), *common, "--force")
    assert r.returncode == 0 and " ran " in r.stdout
    assert "memo: loaded the trained model" in (runs / "smoke" / "run.ipynb").read_text()
    assert json.loads((runs / "smoke" / "metrics.json").read_text()) == first_metrics
    # with another data folder (so no memo) it trains again: the same config gives identical metrics and history
    r = moons_vae(ROOT, str(params / "smoke.yaml"), "--runs-dir", str(runs), "--data-dir", str(tmp_path / "data2"), "--quiet", "--force")
    assert r.returncode == 0 and " ran " in r.stdout
    assert "memo: loaded" not in (runs / "smoke" / "run.ipynb").read_text()
    assert json.loads((runs / "smoke" / "metrics.json").read_text()) == first_metrics
    assert strip_timing(json.loads((runs / "smoke" / "history.json").read_text())) == strip_timing(first_history)

    # a failing experiment: earlier outputs stay, the others finish, the exit code is non-zero
    good = {p.name: p.read_bytes() for p in (runs / "smoke").iterdir()}
    (params / "smoke.yaml").write_text(SMOKE.read_text() + "\ndevice: mps\n")   # valid value, absent device
    (params / "smoke_cvae.yaml").write_text(yaml.safe_dump(other | {"beta": 3.0}))
    r = moons_vae(ROOT, *files, *common, "--workers", "1")
    assert r.returncode == 1
    assert "experiment 'smoke'" in r.stdout and "failed in cell" in r.stdout and "device='mps'" in r.stdout, r.stdout
    assert {p.name: p.read_bytes() for p in (runs / "smoke").iterdir()} == good
    assert json.loads((runs / "smoke_cvae" / "config.json").read_text())["beta"] == 3.0
    assert not [p for p in runs.iterdir() if ".tmp-" in p.name]


def test_runner_rejects_bad_params_file_before_running(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: vae\nlatent: 3\n")
    r = moons_vae(ROOT, str(SMOKE), str(bad), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr and "unknown parameter(s) ['latent']" in r.stderr
    assert not (tmp_path / "runs").exists()                          # nothing ran, not even the good file


def test_verify_reproduces_a_stored_run_and_catches_an_altered_one(tmp_path):
    "`moons-vae verify` re-executes the smoke run (it trains again: fresh data folder) and compares outputs and files."
    runs = tmp_path / "runs"
    r = moons_vae(ROOT, str(SMOKE), "--runs-dir", str(runs), "--data-dir", str(tmp_path / "data"), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    verify = lambda: subprocess.run([tool("moons-vae"), "verify", "smoke", "--runs-dir", str(runs)], cwd=ROOT,
                                    capture_output=True, text=True, timeout=600)
    v = verify()
    assert v.returncode == 0 and "identical outputs and files" in v.stdout, v.stdout[-3000:] + v.stderr[-2000:]
    m = json.loads((runs / "smoke" / "metrics.json").read_text())
    m["recon_mse_mean"] *= 0.5                                   # a "better" number than the run produced
    (runs / "smoke" / "metrics.json").write_text(json.dumps(m))
    v = verify()
    assert v.returncode == 1 and "metrics.json differs" in v.stdout and "does NOT reproduce" in v.stderr, v.stdout[-2000:]
    missing = subprocess.run([tool("moons-vae"), "verify", "nothing", "--runs-dir", str(runs)], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "holds no run.ipynb" in missing.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_runner_leaves_no_processes_and_no_run_folder(tmp_path, sig):
    """A short experiment, then two long ones on two workers; the runner is killed while the long ones train: its workers
    and kernels end with it, and (SIGTERM) the short one keeps its record in status.json."""
    params, runs = tmp_path / "params", tmp_path / "runs"
    params.mkdir()
    long = yaml.safe_load(SMOKE.read_text()) | {"max_epochs": 100000, "min_epochs": 100000, "patience": 100000}
    (params / "q.yaml").write_text(SMOKE.read_text())
    for name in ("a", "b"): (params / f"{name}.yaml").write_text(yaml.safe_dump(long | {"seed": 1 if name == "a" else 2}))
    p = subprocess.Popen([tool("moons-vae"), "run", *(str(params / f"{n}.yaml") for n in "qab"), "--workers", "2",
                          "--runs-dir", str(runs), "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr.txt").open("w"))   # a file: a pipe could fill up
    try:
        deadline = time.time() + 240
        while not (runs / "q" / "metrics.json").is_file() or len(list((runs / ".progress").glob("*.json"))) < 2:   # a, b training
            assert p.poll() is None and time.time() < deadline, "the experiments did not start"
            time.sleep(0.5)
        family = psutil.Process(p.pid).children(recursive=True)
        assert len(family) >= 4, family                                   # two workers, two kernels (and more)
        p.send_signal(sig); p.wait(timeout=60)
        alive = lambda: [q for q in family if q.is_running() and q.status() != psutil.STATUS_ZOMBIE]
        deadline = time.time() + 30
        while alive() and time.time() < deadline: time.sleep(0.5)
        assert not alive(), [(q.pid, q.name(), q.cmdline()[:3]) for q in alive()]
        assert not (runs / "a").exists() and not (runs / "b").exists()    # nothing half-written where a run would be
        if sig == signal.SIGTERM:
            assert not [q for q in runs.iterdir() if ".tmp-" in q.name]                              # cleaned up on the way out
            status = json.loads((runs / "status.json").read_text())
            assert status["q"]["status"] == "ran" and status["q"]["seconds"] > 0 and "a" not in status, status
            err = (tmp_path / "stderr.txt").read_text()
            assert "Exception ignored" not in err and "Traceback" not in err, err[-3000:]   # an orderly stop, not a crash
    finally:
        if p.poll() is None: p.kill()
        for q in psutil.Process().children(recursive=True): q.kill()

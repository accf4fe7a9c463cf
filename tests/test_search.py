"""Hyperparameter search: bad input, several worker processes on SQLite and PostgreSQL, a killed worker, divergence, resume.

The PostgreSQL tests start a throwaway server with Debian's binaries (package `postgresql`); outside CI they skip
when those are missing, with CI=1 set they fail."""
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from moons_vae.search.space import REFERENCE_SPACE
from moons_vae.search.storage import SearchStorageError, storage_url
from moons_vae.search.run import run_search
from moons_vae.train import TrainingDiverged

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(n_samples=200, min_epochs=1, max_epochs=20, device="cpu")   # tiny data; the reference space's nets are small anyway
SMALL = dict(BASE, max_epochs=5)


def _never(trial, cfg, model):
    raise AssertionError("a trial started training")


def _numbers_and_states(study):
    return [t.number for t in study.trials], [t.state.name for t in study.trials]


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, message", [
    (dict(space={**REFERENCE_SPACE, "dropout": {"type": "float", "low": 0.0, "high": 0.5}}), "space['dropout']: unknown parameter 'dropout'"),
    (dict(space={**REFERENCE_SPACE, "lr": {"type": "float", "low": 0.1, "high": 1e-4, "log": True}}), "space['lr']: empty range, low=0.1 > high=0.0001"),
    (dict(space={**REFERENCE_SPACE, "batch_size": {"type": "categorical", "choices": []}}), "space['batch_size']: empty choices=[]"),
    (dict(n_trials=0), "n_trials=0 must be an int >= 1"),
    (dict(n_trials=2.5), "n_trials=2.5 must be an int >= 1"),
])
def test_bad_input_fails_before_storage_and_training(tmp_path, kw, message):
    db = tmp_path / "bad.db"
    args = dict(study_name="bad", storage=db, model="vae", n_trials=3, base_params=SMALL, progress=False, objective_hook=_never)
    with pytest.raises(ValueError, match=re.escape(message)):
        run_search(**{**args, **kw})
    assert not db.exists()          # rejected before the storage was even opened


def test_unreachable_storage_fails_fast_with_masked_url(tmp_path):
    with socket.socket() as s:      # a port that nothing listens on
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(SearchStorageError) as e:
        run_search("bad", f"postgresql://searcher:hunter2@127.0.0.1:{port}/optuna", "vae", 3, SMALL, progress=False, objective_hook=_never)
    assert time.perf_counter() - t0 < 15
    assert f"cannot open the study storage postgresql+psycopg2://searcher:***@127.0.0.1:{port}/optuna" in str(e.value)
    assert "hunter2" not in str(e.value)
    with pytest.raises(SearchStorageError, match=re.escape("cannot open the study storage sqlite:////no/such/folder/s.db")):
        run_search("bad", "sqlite:////no/such/folder/s.db", "vae", 3, SMALL, progress=False, objective_hook=_never)


# ---------------------------------------------------------------------------------------------- divergence and resume
def test_diverging_trial_is_fail_with_reason_and_search_goes_on(tmp_path):
    def poison(trial, cfg, model):
        if trial.number == 2: model.decoder.register_forward_hook(lambda mod, i, out: out * float("inf"))
    study = run_search("div", tmp_path / "div.db", "vae", 4, SMALL, progress=False, objective_hook=poison)
    numbers, states = _numbers_and_states(study)
    assert numbers == [0, 1, 2, 3] and states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    reason = study.trials[2].user_attrs["fail_reason"]
    assert reason.startswith("TrainingDiverged: loss became non-finite at epoch 1"), reason
    assert "fail_reason" not in study.trials[1].user_attrs


def test_resume_after_interrupt_completes_exactly_n_trials(tmp_path):
    db = tmp_path / "resume.db"
    def ctrl_c(trial, cfg, model):
        if trial.number == 3: raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_search("resume", db, "cvae", 7, SMALL, progress=False, objective_hook=ctrl_c)
    interrupted = optuna.load_study(study_name="resume", storage=storage_url(db, "resume"))
    assert _numbers_and_states(interrupted) == ([0, 1, 2, 3], ["COMPLETE"] * 3 + ["FAIL"])   # the interrupted trial is not left RUNNING
    study = run_search("resume", db, "cvae", 7, SMALL, progress=False)
    assert _numbers_and_states(study) == (list(range(7)), ["COMPLETE"] * 3 + ["FAIL"] + ["COMPLETE"] * 3)
    again = run_search("resume", db, "cvae", 7, SMALL, progress=False, objective_hook=_never)   # complete: nothing to do
    assert len(again.trials) == 7


def test_resume_after_interrupt_with_trials_at_once(tmp_path):
    db = tmp_path / "resume.db"
    def ctrl_c(trial, cfg, model):
        if trial.number == 3: raise KeyboardInterrupt      # while asking the second batch: trials 2 and 3 are asked, none trained
    with pytest.raises(KeyboardInterrupt):
        run_search("resume", db, "cvae", 7, SMALL, progress=False, objective_hook=ctrl_c, trials_at_once=2)
    interrupted = optuna.load_study(study_name="resume", storage=storage_url(db, "resume"))
    assert _numbers_and_states(interrupted) == ([0, 1, 2, 3], ["COMPLETE"] * 2 + ["FAIL"] * 2)
    study = run_search("resume", db, "cvae", 7, SMALL, progress=False, trials_at_once=2)
    assert _numbers_and_states(study) == (list(range(7)), ["COMPLETE"] * 2 + ["FAIL"] * 2 + ["COMPLETE"] * 3)


# ---------------------------------------------------------------------------------------------- worker processes
WORKER = r"""
import json, os, pathlib, sys, time
from moons_vae.search.run import run_search
a = json.loads(sys.argv[1])
pathlib.Path(a.pop("ready")).touch()
go = pathlib.Path(a.pop("go"))
while not go.exists(): time.sleep(0.01)
hook, n, marker = None, a.pop("hang_in_trial", None), a.pop("marker", None)
if n is not None:
    def hook(trial, cfg, model):
        if trial.number == n:
            pathlib.Path(marker).touch(); time.sleep(600)
run_search(**a, objective_hook=hook)
"""


def _start_workers(tmp_path, n, **run_kw):
    procs = []
    for i in range(n):
        args = dict(run_kw, ready=str(tmp_path / f"ready{i}"), go=str(tmp_path / "go"))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(args)], cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs if p.poll() is not None]
        time.sleep(0.05)
    (tmp_path / "go").touch()     # both have imported everything: start them together
    return procs


def _two_workers_share_one_study(tmp_path, storage, n_trials=12):
    procs = _start_workers(tmp_path, 2, study_name="par", storage=storage, model="vae", n_trials=n_trials,
                           base_params=BASE, progress=False)
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study = optuna.load_study(study_name="par", storage=storage_url(storage, "par"))
    numbers, states = _numbers_and_states(study)
    assert numbers == list(range(n_trials)), numbers             # every trial once, none lost, none beyond n_trials
    assert set(states) <= {"COMPLETE", "PRUNED"}, states
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2, workers                             # both processes did take trials
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == n_trials   # no configuration proposed twice
    return study


def test_two_worker_processes_on_sqlite(tmp_path):
    _two_workers_share_one_study(tmp_path, str(tmp_path / "par.db"))


def test_killed_worker_leaves_study_usable(tmp_path):
    db = str(tmp_path / "kill.db")
    run = dict(study_name="kill", storage=db, model="vae", n_trials=4, base_params=SMALL, progress=False,
               heartbeat_interval=1, grace_period=2)
    marker = tmp_path / "in-trial-1"
    (proc,) = _start_workers(tmp_path, 1, **run, hang_in_trial=1, marker=str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0] if proc.poll() is not None else "timeout"
        time.sleep(0.05)
    url = storage_url(db, "kill")
    assert _numbers_and_states(optuna.load_study(study_name="kill", storage=url)) == ([0, 1], ["COMPLETE", "RUNNING"])
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(4)                 # > grace_period (2 s) + the 1 s resolution of SQLite's clock
    study = run_search(**run)
    assert _numbers_and_states(study) == ([0, 1, 2, 3], ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"])
    assert study.trials[1].user_attrs["worker"].endswith(f":{proc.pid}")


# ---------------------------------------------------------------------------------------------- PostgreSQL
def _postgres_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(re.search(r"/(\d+)/bin$", d).group(1)))
    for d in reversed(dirs):
        if all(os.access(f"{d}/{x}", os.X_OK) for x in ("initdb", "pg_ctl", "createdb")): return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@pytest.fixture(scope="module")
def postgres_url():
    "A throwaway PostgreSQL server on a free port of 127.0.0.1 with a fresh database; removed afterwards."
    bindir = _postgres_bindir()
    if bindir is None:
        msg = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
        if os.environ.get("CI"): pytest.fail(msg)
        pytest.skip(msg)
    tmp = tempfile.mkdtemp(prefix="moons-vae-pg-")   # not pytest's tmp_path: the postgres user must reach it
    as_user = []
    if os.geteuid() == 0:                            # initdb refuses to run as root
        pg = pwd.getpwnam("postgres")
        os.chown(tmp, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    data, log = os.path.join(tmp, "data"), os.path.join(tmp, "server.log")
    run = lambda *cmd: subprocess.run(as_user + list(cmd), check=True, capture_output=True, text=True, timeout=120)
    try:
        run(f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(f"{bindir}/pg_ctl", "-D", data, "-l", log, "-w", "-t", "60",
            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp} -F", "start")
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "moons_search")
    except subprocess.CalledProcessError as e:
        server_log = Path(log).read_text() if os.path.exists(log) else ""
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"could not start a PostgreSQL server: {e.cmd} -> {e.returncode}\n{e.stdout}\n{e.stderr}\n{server_log}")
    try:
        yield f"postgresql://postgres:unused-password@127.0.0.1:{port}/moons_search"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def test_two_worker_processes_on_postgresql(tmp_path, postgres_url):
    study = _two_workers_share_one_study(tmp_path, postgres_url)
    assert study._storage._backend.engine.dialect.name == "postgresql"
    # a second search in the same database is an independent study
    other = run_search("other", postgres_url, "cvae", 2, SMALL, progress=False)
    assert len(other.trials) == 2 and len(optuna.load_study(study_name="par", storage=storage_url(postgres_url, "par")).trials) == 12

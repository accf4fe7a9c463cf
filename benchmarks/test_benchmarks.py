"""Fast checks of the benchmark scripts' own logic (no timing): `.venv/bin/pytest benchmarks/test_benchmarks.py`."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import pipeline  # noqa: E402
import rebuild  # noqa: E402
import run  # noqa: E402
from moons_vae.loss import elbo_loss  # noqa: E402
from moons_vae.models import ModelOutput  # noqa: E402
from moons_vae.train import RunConfig  # noqa: E402


def test_epoch_flops_of_the_tuned_config():
    cfg = RunConfig(encoder_hidden=8, latent_dim=128, decoder_hidden=128)
    # forward per point: 2*(2*8 + 8*256) encoder with fused head, 2*(128*128 + 128*2) decoder
    assert run.forward_matmul_flops(cfg) == 2 * (2 * 8 + 8 * 256) + 2 * (128 * 128 + 128 * 2) == 37408
    assert run.epoch_flops(cfg, 1200, 400) == 3 * 37408 * 1200 + 37408 * 400


def test_reference_loss_is_half_the_per_sample_elbo():
    g = torch.Generator().manual_seed(0)
    x, x_hat, mu, lv = (torch.randn(7, d, generator=g) for d in (2, 2, 5, 5))
    ref, _ = run.RefVAELoss(beta=3.0)((x_hat, mu, lv), x)
    ours = elbo_loss(ModelOutput(x_hat, mu, lv, mu, decoder_var=0.5), x, 3.0).total
    torch.testing.assert_close(ref * 2, ours - math.log(math.pi))   # our NLL keeps the constant (D/2) log(pi) of sigma_x^2 = 1/2


def test_sweep_grid_and_fixed_epochs():
    cfgs = run.sweep_configs(RunConfig(), 12)
    assert len(cfgs) == 64 and len({(c.beta, c.eps_w) for c in cfgs}) == 64
    assert min(c.beta for c in cfgs) == pytest.approx(0.1) and max(c.beta for c in cfgs) == pytest.approx(100)
    assert min(c.eps_w for c in cfgs) == pytest.approx(1e-3) and max(c.eps_w for c in cfgs) == pytest.approx(1)
    assert all(c.min_epochs == c.max_epochs == 12 for c in cfgs)
    assert [run.vec_epochs(40, k) for k in (8, 16, 32, 64)] == [40, 40, 20, 10]


def test_targets_pass_miss_and_margin():
    assert _common.target("x", 7.5, 6)["status"] == "PASS" and _common.target("x", 7.5, 6)["margin"] == pytest.approx(0.25)
    assert _common.target("x", 3, 6)["status"] == "MISS"
    assert _common.target("warm", 20, 15, higher_is_better=False)["status"] == "MISS"
    assert _common.target("warm", 5, 15, higher_is_better=False)["status"] == "PASS"
    assert _common.target("x", None, 6)["status"] == "N/A"


def test_save_results_writes_json_and_markdown(tmp_path):
    r = {"machine": {"cpu_model": "cpu", "date": "now"}, "targets": [_common.target("c/a >= 6", 7.0, 6)],
         "pipeline": {"quick": {"phases": {"cold": {"seconds": 10.0, "ran": 2, "cached": 0, "failed": None},
                                           "warm": {"seconds": 1.0, "ran": 0, "cached": 2, "failed": None}},
                                "epochs_total": 500, "pipeline_epochs_per_s": 50.0, "profile": "quick"}}}
    _common.link_pipeline(r)
    p = r["pipeline"]["quick"]
    assert p["ratio_to_a"] is None and p["targets"][1]["status"] == "PASS" and p["targets"][0]["status"] == "N/A"
    r["configs"] = {"tuned": {"contenders": {"a": {"rate": 2.5}}}}
    _common.link_pipeline(r)
    assert p["ratio_to_a"] == 20 and p["targets"][0]["status"] == "PASS"
    del r["configs"]
    j, m = _common.save_results(r, tmp_path / "res.json")
    assert json.loads(j.read_text())["pipeline"]["quick"]["epochs_total"] == 500
    md = m.read_text()
    assert "| c/a >= 6 | 7 | 6 | **PASS** | +17% |" in md and "warm rebuild < 15 s [quick]" in md and "## Pipeline (quick)" in md
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="must name a .json file"): _common.save_results(r, tmp_path / "res.txt")


def test_touch_value_replaces_or_appends(tmp_path):
    src = tmp_path / "a.yaml"; src.write_text("# comment\nmodel: vae\nseed: 42\n")
    assert pipeline.touch_value(src, tmp_path / "b.yaml", "seed", "43") == "42"
    assert (tmp_path / "b.yaml").read_text() == "# comment\nmodel: vae\nseed: 43\n"
    assert pipeline.touch_value(src, tmp_path / "c.yaml", "lr", "0.002") is None
    assert (tmp_path / "c.yaml").read_text().endswith("seed: 42\nlr: 0.002\n")


def test_run_rejects_bad_arguments():
    with pytest.raises(SystemExit): run.parse_args(["--epochs", "0"])
    with pytest.raises(SystemExit): run.parse_args(["--K", "8", "0"])
    a = run.parse_args(["--quick"])
    assert (a.epochs, a.repeats, a.K) == (8, 2, [8])


def test_epochs_trained_counts_runs_sweeps_and_searches(tmp_path):
    (tmp_path / "vae").mkdir(); (tmp_path / "sweep").mkdir(); (tmp_path / "search").mkdir(); (tmp_path / ".tmp-x").mkdir()
    (tmp_path / "vae" / "history.json").write_text(json.dumps([{"seconds": 0.5}, {"seconds": 0.25}]))
    (tmp_path / "vae" / "cache.json").write_text(json.dumps({"runner_seconds": 3.0}))
    (tmp_path / "sweep" / "cells.json").write_text(json.dumps([{"epochs": 10, "n_samples": 20000}, {"epochs": 7, "n_samples": 200}]))
    (tmp_path / "prob").mkdir(); (tmp_path / "prob" / "points.json").write_text(json.dumps([{"epochs": 4}]))
    (tmp_path / "odd").mkdir()
    (tmp_path / "search" / "trials.json").write_text(json.dumps([{"user_attrs_epochs": 5}, {"user_attrs_epochs": None}]))
    (tmp_path / ".tmp-x" / "history.json").write_text(json.dumps([{}] * 100))
    total, per = pipeline.epochs_trained(tmp_path)
    assert total == 2 + 17 + 4 + 5 and set(per) == {"vae", "sweep", "prob", "search", "odd"}
    assert per["odd"]["epochs"] == 0 and "unknown" in per["odd"]["kind"]
    assert per["vae"] == {"kind": "train", "epochs": 2, "train_seconds": 0.75, "notebook_seconds": 3.0, "point_epochs": 2.0}
    assert per["sweep"]["point_epochs"] == 10 * 10 + 7 * 0.1      # epochs of 1200 training points: n = 20000 -> 10, n = 200 -> 0.1
    assert "1 without an epoch count" in per["search"]["kind"]


def test_rebuild_adds_one_line_to_the_exported_code_and_renders(tmp_path):
    nb = json.loads((Path(__file__).resolve().parents[1] / rebuild.PLOTS_NOTEBOOK).read_text())
    touched = json.loads(rebuild.add_line(json.dumps(nb)))
    before = ["".join(c["source"]) for c in nb["cells"]]
    after = ["".join(c["source"]) for c in touched["cells"]]
    changed = [i for i, (x, y) in enumerate(zip(before, after)) if x != y]
    assert len(changed) == 1 and after[changed[0]] == before[changed[0]].rstrip("\n") + "\n" + rebuild.TOUCH
    assert after[changed[0]].startswith("#| export")
    with pytest.raises(ValueError, match="no exported code cell"): rebuild.add_line(json.dumps({"cells": []}))
    phase = lambda s, ran, tr: dict(command="bash tasks.sh report", seconds=s, returncode=0, ran=ran, trainings=tr, book_rebuilt=True, log_tail="")
    entry = dict(command="x", date="d", commit="abc", profile="full", phases={"warm": phase(20, [], 0), "plots": phase(150, ["vae"], 0)},
                 targets=[_common.target("report after a one-line plots change < 300 s [full]", 150, 300, higher_is_better=False)])
    md = _common.render_markdown({"rebuild": {"full": entry}})
    assert "Rebuild after a one-line plots change (full)" in md and "| plots | 150 | vae | 0 | 0 |" in md and "**PASS**" in md


def test_dask_section_renders():
    entry = dict(command="x", date="d", params_files=["vae.yaml"], profile="quick", workers=2, dask_seconds=10.0,
                 local_seconds=9.0, ratio_local_to_dask=0.9, identical_metrics={"vae": True})
    md = _common.render_markdown({"dask": entry})
    assert "## Experiments on a Dask cluster" in md and "| Dask cluster | 10.0 |" in md and "identical: **True**" in md


def test_run_keeps_the_other_scripts_sections():
    "run.py rewrites results.json with its own sections and keeps those of rebuild.py and dask_run.py."
    new = {"configs": {}, "targets": []}
    out = run.keep_other_sections(new, {"configs": {"old": 1}, "rebuild": {"quick": {"x": 1}}, "dask": {"y": 2}})
    assert out["configs"] == {} and out["rebuild"] == {"quick": {"x": 1}} and out["dask"] == {"y": 2}
    assert "rebuild" not in run.keep_other_sections({"configs": {}}, {})


def test_evaluate_benchmark_names_a_bad_baseline(tmp_path):
    import evaluate as evaluate_bench
    with pytest.raises(SystemExit, match="evaluate.py: --baseline 'no-such-commit' is not a commit"):
        evaluate_bench.baseline_tree("no-such-commit", tmp_path, "evaluate.py")
    assert (evaluate_bench.baseline_tree("HEAD", tmp_path) / "moons_vae" / "evaluate.py").is_file()


def test_evaluate_section_of_the_results_page():
    row = dict(case="vae n=200", baseline_seconds=2.0, current_seconds=0.5, ratio=4.0,
               baseline_values={"test_nll": -1.2, "samples_on_support": 0.9}, current_values={"test_nll": -1.2, "samples_on_support": 0.9})
    md = _common.render_markdown({"evaluate": dict(command="x", date="d", commit="abc", baseline="def", repeats=3, rows=[row])})
    assert "## Evaluating one model" in md and "| vae n=200 | 2 | 0.5 | 4.00x |" in md


def test_search_section_of_the_results_page():
    t = _common.target("100-trial search, full fidelity, one worker <= 300 s", 450.0, 300, higher_is_better=False)
    se = dict(command="x", date="d", commit="abc", baseline="def", model="vae", trials=100, max_epochs=1000, repeats=1,
              baseline_seconds=900.0, current_seconds=450.0, ratio=2.0, epochs=30000, pruned=40, same_trials=True, targets=[t])
    md = _common.render_markdown({"search": se})
    assert "## One worker of the hyperparameter search" in md and "| 900 | 450 | 2.00x | 30000 | 40 | **yes** |" in md
    assert "| 100-trial search, full fidelity, one worker <= 300 s | 450 | 300 | **MISS** |" in md


def test_search_at_once_section_of_the_results_page():
    t = _common.target("100-trial search, full fidelity, one worker, 8 trials at once <= 300 s", 250.0, 300, higher_is_better=False)
    sa = dict(command="x", date="d", commit="abc", baseline="abc", model="vae", trials=100, max_epochs=1000, repeats=1, trials_at_once=8,
              baseline_seconds=500.0, current_seconds=250.0, ratio=2.0, epochs=30000, pruned=40, same_trials=False,
              baseline_best=0.01234, current_best=0.01111, targets=[t])
    md = _common.render_markdown({"search_at_once": sa})
    assert "## Several search trials at once" in md and "| 500 | 250 | 2.00x | 0.01234 → 0.01111 | 30000 | 40 |" in md, md
    assert "| 100-trial search, full fidelity, one worker, 8 trials at once <= 300 s | 250 | 300 | **PASS** |" in md


def test_search_benchmark_rejects_bad_counts():
    import search as search_bench
    with pytest.raises(SystemExit):
        search_bench.main(["--baseline", "HEAD", "--trials", "0"])
    with pytest.raises(SystemExit):                    # nothing to compare with
        search_bench.main(["--trials", "12"])


def test_cold_book_reads_bash_time_and_ranks_experiments(tmp_path):
    import cold_book
    assert cold_book.bash_time_seconds("book built: x\n\nreal\t52m3.250s\nuser\t90m1.0s\nsys\t1m0.1s\n") == 52 * 60 + 3.25
    assert cold_book.bash_time_seconds("real\t0m9.5s\n") == 9.5 and cold_book.bash_time_seconds("no timing here") is None
    status = {"a": {"status": "ran", "seconds": 5.0}, "b": {"status": "cached", "seconds": 0.1}, "c": {"status": "ran", "seconds": 50.0},
              "d": {"status": "failed", "seconds": 99.0}}
    assert cold_book.slowest(status) == [("c", 50.0), ("a", 5.0)]
    with pytest.raises(SystemExit):                    # nothing to record
        cold_book.record(tmp_path)


def test_cold_book_reads_the_runner_passes_and_counts_training_work(tmp_path):
    import cold_book
    log = ("tasks.sh: installing\nexperiments:   0%|          | 0/3 [00:00<?, ?exp/s]\rexperiments:  33%|▎| 1/3 [00:59<01:58, 59s/exp, a]"
           "\rexperiments: 100%|██| 3/3 [1:02:05<00:00, 9s/exp]\nexperiments:   0%|    | 0/2 [00:00<?, ?exp/s]"
           "\rexperiments: 100%|██| 2/2 [02:10<00:00]\n")
    assert cold_book.runner_passes(log) == [(3, 3725.0), (2, 130.0)]     # 1 h 2 min 5 s, then 2 min 10 s
    assert cold_book.runner_passes("no progress here") == []
    runs = tmp_path / "runs"
    for name, files in {"sweep": {"cells.json": [dict(n_samples=2000, batch_size=256, epochs=10),     # 1200 points: 5 steps an epoch
                                                 dict(n_samples=200, batch_size=256, epochs=7),       # 120 points: 1 step
                                                 dict(n_samples=2000, batch_size=256, epochs=0)]},   # never trained (diverged at once)
                        "search": {"trials.json": [dict(params_batch_size=32, user_attrs_epochs=3),  # 1200 / 32: 38 steps
                                                   dict(params_batch_size=64, user_attrs_epochs=None)]},  # failed before an epoch
                        "run": {"config.json": dict(n_samples=20000, batch_size=256), "history.json": [{}] * 4},   # 12000 / 256: 47
                        "pageless": {}}.items():
        (runs / name).mkdir(parents=True)
        for f, v in files.items(): (runs / name / f).write_text(json.dumps(v))
    assert cold_book.training_work(runs / "sweep") == dict(models=2, epochs=17, steps=57)
    assert cold_book.training_work(runs / "search") == dict(models=1, epochs=3, steps=114)
    assert cold_book.training_work(runs / "run") == dict(models=1, epochs=4, steps=188)
    assert cold_book.training_work(runs / "pageless") == dict(models=0, epochs=0, steps=0)


def test_cold_book_section_of_the_results_page():
    t = _common.target("full cold book (bash tasks.sh report, fresh clone) <= 15 min", 52.1, 15, higher_is_better=False)
    cb = dict(command="x", date="d", commit="abcdef0123", seconds=3126.0, rc=0, experiments_ran=72, slowest=[["search_vae", 574.2]], targets=[t])
    md = _common.render_markdown({"cold_book": cb})
    assert "## The full cold book" in md and "**52.1 min**, 72 experiments" in md and "| search_vae | 574 |" in md, md
    assert "| full cold book (bash tasks.sh report, fresh clone) <= 15 min | 52.1 | 15 | **MISS** |" in md
    cb |= dict(passes=[[87, 3000.0], [15, 60.0]], outside_runner_seconds=66.0, experiment_seconds={"search_vae": 574.2, "vae": 9.0},
               work={"search_vae": dict(models=100, epochs=30000, steps=200000), "vae": dict(models=1, epochs=700, steps=3500)})
    md = _common.render_markdown({"cold_book": cb})
    assert "runner pass 1 (87 jobs) 50.0 min; runner pass 2 (15 jobs) 1.0 min; outside the runner" in md and "1.1 min." in md, md
    assert "| search_vae | 574 | 100 | 30000 | 200000 | 2.87 |" in md and "| vae | 9 | 1 | 700 | 3500 | 2.57 |" in md, md
    assert "In all: 101 models, 203,500 gradient steps, 10 min of experiment wall time." in md, md


def test_groups_section_and_its_comparison():
    import groups
    assert groups.max_abs_diff([1.0, None, 3.0], [1.5, 2.0, 2.0]) == 1.0 and groups.max_abs_diff([None], [1.0]) is None
    gr = dict(command="x", date="d", commit="abcdef0123", design=dict(models=["vae"], sizes=[200], noises=[0.0], draws=[42], seeds=[42], steps=10),
              models_trained=1, repeats=1, rows=[dict(way="per draw", members_per_group=1, groups=7, seconds=10.0),
                                                 dict(way="per size", members_per_group=16, groups=1, seconds=4.0)],
              ratio=2.5, max_abs_diff={"recon_mse_mean": 1e-7, "test_nll": 2e-6})
    md = _common.render_markdown({"groups": gr})
    assert "## Grouping the dataset sweep" in md and "| per size | 16 | 1 | 4 |" in md and "**2.50x**" in md, md
    with pytest.raises(SystemExit):
        groups.main(["--steps", "0"])

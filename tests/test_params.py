"""The params files that repeat other experiments' settings (the replicates, the continuous model's variants) agree with
those experiments' own params files, so that a changed experiment cannot leave its replicates behind."""
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from moons_vae.train import RunConfig

PARAMS = ROOT / "params"


def _settings(name: str) -> dict:
    d = yaml.safe_load((PARAMS / f"{name}.yaml").read_text()) or {}
    d.pop("notebook", None)
    return d


@pytest.mark.parametrize("collection", ["replicates", "sweep_contvae"])
def test_variants_repeat_their_experiments(collection):
    spec = _settings(collection)
    options = {"variants", "seeds", "data_seeds", "workers", "max_epochs", "eval_K"}
    fixed = {k: v for k, v in spec.items() if k not in options}
    checked = 0
    for name, variant in spec["variants"].items():
        if not (PARAMS / f"{name}.yaml").is_file(): continue       # a variant with no experiment of its own
        effective = lambda d: RunConfig.from_dict(d).to_dict()         # defaults filled in: the run each one makes
        assert effective({**fixed, **variant}) == effective(_settings(name)), f"{collection}.yaml's variant {name!r} differs from params/{name}.yaml"
        checked += 1
    assert checked >= 6, checked


def test_every_vae_and_cvae_training_experiment_has_replicates():
    variants = _settings("replicates")["variants"]
    training = [p.stem for p in PARAMS.glob("*.yaml") if p.stem not in ("claims", "replicates")
                and "notebook" not in (yaml.safe_load(p.read_text()) or {}) and _settings(p.stem).get("model") in ("vae", "cvae")]
    assert sorted(training) == sorted(variants), (sorted(training), sorted(variants))

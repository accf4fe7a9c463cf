"""Slower checks of moons_vae.vectorized: worker processes, and equivalence with `fit` on the tuned architecture.
The fast checks (all model kinds, schedules, early stopping, divergence) are in nbs/07_vectorized.ipynb."""
import pickle

import pytest
import torch

from moons_vae.data import load_moons
from moons_vae.train import RunConfig, TrainingDiverged, fit, make_model, HISTORY_LOSS_KEYS
from moons_vae.vectorized import (batched_matmul_is_exact, linear_shapes, fit_many, fit_many_parallel, _err_from_plain, _err_to_plain)


def strip(h): return [{k: v for k, v in r.items() if k != "seconds"} for r in h]


def same_results(a, b):
    assert [r.config for r in a] == [r.config for r in b]
    for x, y in zip(a, b):
        assert strip(x.history) == strip(y.history)
        assert x.stop == y.stop
        assert list(x.state) == list(y.state)
        for p, q in zip(x.state.values(), y.state.values()): assert torch.equal(p, q)


@pytest.fixture(scope="module")
def small():
    torch.set_num_threads(1)
    data = load_moons(200, 0.1, 0, cache_dir=None)
    base = dict(n_samples=200, noise=0.1, data_seed=0, latent_dim=4, encoder_hidden=8, decoder_hidden=16,
                batch_size=32, min_epochs=5, device="cpu")
    cfgs = [RunConfig(**base, seed=s, beta=b, lr=lr, patience=p, max_epochs=m) for s, b, lr, p, m in
            [(0, 1.0, 1e-2, 5, 40), (1, 0.5, 3e-3, 8, 30), (2, 2.0, 1e-2, 6, 50), (3, 1.0, 5e-3, 30, 25), (4, 0.2, 1e-2, 4, 40)]]
    return data, cfgs


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_parallel_equals_fit_many(small, start_method):
    "Members split over two worker processes (groups of 2, dealt round-robin) give fit_many's results exactly."
    data, cfgs = small
    ref = fit_many(cfgs, data, progress=False)
    same_results(ref, fit_many_parallel(cfgs, data, workers=2, group_size=2, progress=False, start_method=start_method))


def test_parallel_stop_on_diverge_and_bad_args(small):
    data, cfgs = small
    with pytest.raises(ValueError, match="start_method='fork' is not one of"):
        fit_many_parallel(cfgs, data, start_method="fork")
    with pytest.raises(ValueError, match="must share latent_dim"):
        fit_many_parallel(cfgs + [RunConfig(**{**cfgs[0].to_dict(), "latent_dim": 5})], data)
    # a divergence crosses the process boundary as plain values and is rebuilt with its epoch, values and notes
    e = TrainingDiverged(4, {"train_loss": float("nan")}, {"epoch": 3, "train_loss": 1.5})
    e.member = 1
    e.add_note("fit_many member 1: seed=1")
    back = _err_from_plain(pickle.loads(pickle.dumps(_err_to_plain(e))), member=7)
    assert (back.epoch, back.member, back.last) == (4, 7, {"epoch": 3, "train_loss": 1.5})
    assert str(back) == str(e) and back.__notes__ == ["fit_many member 7: seed=1"]   # renumbered: index in the whole batch


def test_tuned_architecture_matches_fit():
    """The tuned architecture (encoder 8, latent 128, decoder 128, batch 256, 1200 training points): four members with
    different seeds, beta, eps_w and learning rates follow their own `fit` for 25 epochs — bit for bit when the BLAS
    computes batched products like single ones (checked on these shapes), else within a relative 1e-4."""
    torch.set_num_threads(1)
    data = load_moons(2000, 0.15, 42, cache_dir=None)
    cfgs = [RunConfig(device="cpu", seed=s, beta=b, eps_w=e, lr=lr, max_epochs=25, min_epochs=5, patience=8, lr_patience=3)
            for s, b, e, lr in [(0, 1.0, 0.1, 1e-3), (1, 0.5, 1.0, 3e-3), (2, 4.0, 0.3, 1e-3), (3, 1.0, 0.1, 5e-4)]]
    exact = batched_matmul_is_exact(linear_shapes(make_model(cfgs[0]), rows=(256, 1200 % 256, 400)))   # batches, the last one, the val split
    res = fit_many(cfgs, data, progress=False, fast=False)     # autograd's step, bit for bit
    for r, c in zip(res, cfgs):
        m = make_model(c)
        ref = fit(m, data, c, progress=False, fast=False)   # fit_many takes autograd's step: bit for bit that fit
        assert len(r.history) == len(ref)
        if exact:
            assert strip(r.history) == strip(ref)
            for a, b in zip(m.state_dict().values(), r.state.values()): assert torch.equal(a, b)
        else:
            for a, b in zip(ref, r.history):
                for k in HISTORY_LOSS_KEYS: assert b[k] == pytest.approx(a[k], rel=1e-4)

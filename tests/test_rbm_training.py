"""Trained RBMs judged by likelihoods: AIS against enumeration, and learning on real MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genphys.data import DataConfig, prepare_data
from genphys.estimators import BernoulliRBM as SklearnStyleRBM
from genphys.evaluation import (
    ais_log_partition,
    average_log_likelihood,
    exact_log_partition,
)
from genphys.models import BernoulliRBM, RBMConfig
from genphys.training import CDConfig, ContrastiveDivergence, Trainer, TrainerConfig


def _train(data, n_hidden: int, epochs: int, lr: float = 0.05, seed: int = 0) -> BernoulliRBM:
    torch.manual_seed(seed)
    rbm = BernoulliRBM(RBMConfig(n_visible=data.train.shape[1], n_hidden=n_hidden))
    Trainer(
        rbm,
        ContrastiveDivergence(CDConfig(k=1, persistent=True)),
        TrainerConfig(epochs=epochs, batch_size=32, lr=lr, momentum=0.5, seed=seed, progress=False),
    ).fit(data.train, batch_transform=data.batch_transform)
    return rbm


def test_ais_matches_enumeration_for_an_rbm_trained_on_digits() -> None:
    data = prepare_data(DataConfig(name="digits", binarize="static"))
    rbm = _train(data, n_hidden=14, epochs=15)
    exact = exact_log_partition(rbm)
    result = ais_log_partition(rbm, n_chains=100, n_betas=5000, data=data.train, seed=1)
    err = abs(result.log_z.value - exact)
    assert err < 0.1, (result.log_z, exact)
    assert err < 3 * result.log_z.stderr + 1e-3, (result.log_z, exact)
    # training did something: the held-out likelihood beats the data-marginal base rate
    base = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=14, init_std=0.0))
    base.init_visible_bias(data.train)
    ll = average_log_likelihood(rbm, data.val, exact)
    ll_base = average_log_likelihood(base, data.val, exact_log_partition(base))
    assert ll.value > ll_base.value + 5 * np.hypot(ll.stderr, ll_base.stderr)


def test_sklearn_style_estimator() -> None:
    data = prepare_data(DataConfig(name="digits", binarize="static", val_fraction=0.0))
    X = data.train.numpy()
    est = SklearnStyleRBM(
        n_components=16, learning_rate=0.05, batch_size=20, n_iter=3, random_state=0
    ).fit(X)
    assert est.components_.shape == (16, 64)
    W, c, b = (
        np.float64(a) for a in (est.components_, est.intercept_hidden_, est.intercept_visible_)
    )
    h = est.transform(X[:5])  # p(h = 1 | v), from the attributes sklearn users read
    np.testing.assert_allclose(h, 1 / (1 + np.exp(-(X[:5] @ W.T + c))), rtol=1e-5)
    # score_samples: n_features x log p(x_i | x_-i) for one random i per example, whose mean
    # over examples estimates the exact pseudo-log-likelihood sum_i log p(x_i | x_-i)

    def free_energy(v: np.ndarray) -> np.ndarray:
        return -(v @ b) - np.logaddexp(0, v @ W.T + c).sum(-1)

    exact = np.zeros(len(X))
    for i in range(X.shape[1]):
        flipped = X.copy()
        flipped[:, i] = 1 - flipped[:, i]
        exact -= np.logaddexp(0, free_energy(X) - free_energy(flipped))  # log sigmoid(F' - F)
    scores = est.score_samples(X)
    assert scores.shape == (len(X),) and (scores <= 0).all()
    se = scores.std(ddof=1) / np.sqrt(len(X))
    assert abs(scores.mean() - exact.mean()) < 4 * se, (scores.mean(), exact.mean(), se)
    v = est.gibbs(X[:4])
    assert set(np.unique(v)) <= {0.0, 1.0}
    samples = est.sample(n_samples=6, n_steps=3)
    assert samples.shape == (6, 64) and set(np.unique(samples)) <= {0.0, 1.0}
    again = SklearnStyleRBM(
        n_components=16, learning_rate=0.05, batch_size=20, n_iter=3, random_state=0
    ).fit(X)
    np.testing.assert_array_equal(est.components_, again.components_)  # seeded


@pytest.mark.slow
def test_training_on_binarized_mnist_lowers_ais_test_nll(shared_data, monkeypatch) -> None:
    monkeypatch.setenv("GENPHYS_DATA", str(shared_data))
    data = prepare_data(
        DataConfig(name="mnist", split="test", binarize="static", val_fraction=0.1, seed=0)
    )
    assert data.train.shape == (9000, 784)
    torch.manual_seed(0)
    init = BernoulliRBM(RBMConfig(n_visible=784, n_hidden=64))
    init.init_visible_bias(data.train)
    rbm = _train(data, n_hidden=64, epochs=10, lr=0.02)
    nll = {}
    for name, model in (("init", init), ("trained", rbm)):
        log_z = ais_log_partition(model, n_chains=100, n_betas=10000, data=data.train).log_z
        nll[name] = average_log_likelihood(model, data.val, log_z)
    print({k: str(v) for k, v in nll.items()})
    gain = nll["trained"].value - nll["init"].value
    assert gain > 50, nll  # a few epochs take ~200 nats (base rate) down by far more than 50
    assert gain > 10 * np.hypot(nll["trained"].stderr, nll["init"].stderr)


class _AllocatingPCD(ContrastiveDivergence):
    """The PCD step as written before the buffered path: fresh tensors every step."""

    def step(self, ctx, batch):
        model = ctx.model
        negative, self.chains = self.sampler.sample(model, self.chains)
        n, m = len(batch), len(negative)
        x = torch.cat([batch, negative])
        coef = torch.cat([x.new_full((n,), 1 / n), x.new_full((m,), -1 / m)])
        metrics = {}
        if ctx.measure:
            with torch.no_grad():
                metrics["free_energy_gap"] = model.free_energy(x) @ coef
        grads, prob = model.free_energy_grads(x, coef)
        if self.config.reuse_hidden:
            self.chains.hidden = prob[n:]
        ctx.apply_gradients("model", grads)
        return metrics


@pytest.mark.parametrize("reuse_hidden", [False, True])
def test_buffered_pcd_step_is_the_allocating_step_bit_for_bit(reuse_hidden: bool) -> None:
    """The in-place PCD path (chains inside the [batch; chains] buffer, gradients into kept
    buffers) gives the weights and logged metrics of the plain one, and keeps its buffers."""
    data = prepare_data(DataConfig(name="digits", binarize="static", val_fraction=0.0))
    runs, kept = [], []
    for cls in (ContrastiveDivergence, _AllocatingPCD):
        torch.manual_seed(0)
        rbm = BernoulliRBM(RBMConfig(n_visible=64, n_hidden=12))
        objective = cls(CDConfig(k=2, persistent=True, reuse_hidden=reuse_hidden))

        def buffers(trainer, metrics, objective=objective) -> None:
            if objective._joint is not None:
                work = [t.data_ptr() for t in objective._work.values()]
                kept.append((objective._joint.data_ptr(), objective.chains.v.data_ptr(), work))

        trainer = Trainer(
            rbm,
            objective,
            TrainerConfig(epochs=2, batch_size=20, lr=0.1, seed=3, progress=False),
            callbacks=[buffers],
        )
        history = trainer.fit(data.train)
        runs.append((dict(rbm.named_parameters()), [h["train/free_energy_gap"] for h in history]))
    (fast, gap_fast), (plain, gap_plain) = runs
    assert all(torch.equal(fast[k], plain[k]) for k in fast) and gap_fast == gap_plain
    assert len(kept) == 2 and kept[0] == kept[1]  # the same buffers in both epochs
    assert kept[0][1] == kept[0][0] + 20 * 64 * 4  # the chains are rows 20: of the joint buffer

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
    h = est.transform(X[:5])
    assert h.shape == (5, 16) and ((h > 0) & (h < 1)).all()
    scores = est.score_samples(X)
    assert scores.shape == (len(X),) and (scores <= 0).all()
    v = est.gibbs(X[:4])
    assert set(np.unique(v)) <= {0.0, 1.0}
    again = SklearnStyleRBM(
        n_components=16, learning_rate=0.05, batch_size=20, n_iter=3, random_state=0
    ).fit(X)
    np.testing.assert_array_equal(est.components_, again.components_)  # seeded


@pytest.mark.slow
def test_training_on_binarized_mnist_lowers_ais_test_nll(shared_data) -> None:
    import os

    os.environ["GENPHYS_DATA"] = str(shared_data)
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

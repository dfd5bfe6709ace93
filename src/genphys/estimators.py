"""A scikit-learn-style face over the RBM, for users of ``sklearn.neural_network.BernoulliRBM``.

>>> import numpy as np
>>> from genphys.estimators import BernoulliRBM
>>> X = (np.random.default_rng(0).random((200, 16)) < 0.3).astype(np.float32)
>>> rbm = BernoulliRBM(n_components=8, n_iter=2, random_state=0).fit(X)
>>> rbm.transform(X).shape
(200, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genphys.models.rbm import BernoulliRBM as _RBM
from genphys.models.rbm import RBMConfig
from genphys.rng import derive_seed, make_generator
from genphys.training.objectives import CDConfig, ContrastiveDivergence
from genphys.training.options import TrainerConfig
from genphys.training.trainer import Trainer


def _as_tensor(X: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(X, dtype=np.float32))


class BernoulliRBM:
    """Bernoulli RBM trained by PCD, with scikit-learn's parameter names and methods.

    Attributes after :meth:`fit`: ``components_`` (n_components, n_features),
    ``intercept_hidden_``, ``intercept_visible_``, ``model_`` (the genphys
    :class:`~genphys.models.BernoulliRBM`) and ``history_`` (per-epoch metrics).
    """

    def __init__(
        self,
        n_components: int = 256,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        verbose: int = 0,
        random_state: int | None = None,
        k: int = 1,
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.k = k

    def fit(self, X: Any, y: Any = None) -> BernoulliRBM:
        """Train on binary data ``X`` (n_samples, n_features) with PCD-k and plain SGD."""
        x = _as_tensor(X)
        seed = 0 if self.random_state is None else int(self.random_state)
        torch.manual_seed(seed)
        self.model_ = _RBM(RBMConfig(n_visible=x.shape[1], n_hidden=self.n_components))
        config = TrainerConfig(
            epochs=self.n_iter,
            batch_size=min(self.batch_size, len(x)),
            lr=self.learning_rate,
            seed=seed,
            progress=bool(self.verbose),
        )
        objective = ContrastiveDivergence(CDConfig(k=self.k, persistent=True))
        self.history_ = Trainer(self.model_, objective, config).fit(x)
        self._rng = make_generator(derive_seed(seed, 9))
        return self

    @property
    def components_(self) -> np.ndarray:
        return self.model_.weight.detach().t().numpy().copy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        return self.model_.hidden_bias.detach().numpy().copy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        return self.model_.visible_bias.detach().numpy().copy()

    @torch.no_grad()
    def transform(self, X: Any) -> np.ndarray:
        """Hidden activation probabilities p(h = 1 | v)."""
        return self.model_.prob_h(_as_tensor(X)).numpy()

    @torch.no_grad()
    def score_samples(self, X: Any) -> np.ndarray:
        """Stochastic pseudo-log-likelihood per sample (one random bit flipped, x n_features)."""
        from genphys.evaluation import pseudo_log_likelihood_terms

        return pseudo_log_likelihood_terms(self.model_, _as_tensor(X), generator=self._rng).numpy()

    @torch.no_grad()
    def gibbs(self, v: Any) -> np.ndarray:
        """One Gibbs sweep v -> h -> v' from the given visible states."""
        return self.model_.gibbs_step(_as_tensor(v), self._rng).numpy()

    @torch.no_grad()
    def sample(self, n_samples: int = 16, n_steps: int = 1000) -> np.ndarray:
        """Fresh samples from ``n_samples`` Gibbs chains of ``n_steps`` sweeps."""
        from genphys.samplers import sample_model

        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self._rng))
        return sample_model(self.model_, n_samples, seed=seed, steps=n_steps, mean=False).numpy()

"""Training objectives: one step of a model family, plugged into the one :class:`Trainer`.

An objective turns a batch into named losses and asks the trainer's :class:`StepContext` to
apply them (``ctx.update(group, loss)``: zero grad, backward, clip, optimizer step). It may keep
state between steps (persistent chains, replay buffers) that the trainer checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from genphys import kernels
from genphys.config import Config as ConfigBase
from genphys.config import check
from genphys.errors import GenphysError, TrainingDiverged
from genphys.models.rbm import BernoulliRBM, RBMBase, as_rbm
from genphys.models.vae import VAE, Autoencoder
from genphys.registry import register_objective
from genphys.rng import derive_seed
from genphys.samplers.gibbs import GibbsSampler, GibbsState
from genphys.samplers.tempering import ParallelTemperingSampler, TemperingState
from genphys.training.fused_cd import FUSE_MIN_WORK, CounterChains, fused_sgd_step, fused_step

if TYPE_CHECKING:
    from genphys.training.step import StepContext


class Objective:
    """Base class. Subclasses define ``Config`` and :meth:`step`."""

    Config: type[ConfigBase] = ConfigBase
    #: under DDP, wrap the model in DistributedDataParallel (its forward syncs gradients);
    #: objectives that call submodules directly (a GAN) set False and the trainer averages
    #: each group's gradients and broadcasts buffers from rank 0 after every update
    ddp_wrap: bool = True
    #: the step needs the batch's labels (``ctx.labels``); validation gets (data, labels)
    needs_labels: bool = False

    def __init__(self, config: ConfigBase | None = None) -> None:
        self.config = config if config is not None else self.Config()

    def param_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimizer; one optimizer per entry."""
        return {"model": [p for p in model.parameters() if p.requires_grad]}

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        """Per-group TrainerConfig fields that override the trainer's (e.g. {"d": {"lr": x}})."""
        return {}

    def epoch_warnings(self, metrics: dict[str, Any]) -> list[str]:
        """Warnings about an epoch's metrics (printed and logged as ``warnings``)."""
        return []

    def setup(self, model: nn.Module, train: Tensor, seed: int, rank: int, batch_size: int) -> None:
        """Called once before training (and before a resumed state is loaded)."""

    def step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, data: Any) -> dict[str, float]:
        """Metrics on held-out data at the end of each epoch (a tensor; with
        :attr:`needs_labels`, the pair (data, labels))."""
        return {}

    def state_dict(self) -> dict[str, Tensor]:
        """Per-process state (chains, generators) as a flat dict of tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore :meth:`state_dict`."""


@dataclasses.dataclass
class CDConfig(ConfigBase):
    """Contrastive divergence (CD-k) or persistent CD (PCD-k, Tieleman 2008).

    Args:
        k: Gibbs sweeps per parameter update.
        persistent: keep fantasy chains between updates instead of restarting at the data.
        n_chains: persistent chains (default: the batch size).
        init_visible_bias: set visible biases from the data marginals before training.
        sampler: "gibbs", or "tempering" for persistent chains under parallel tempering
            (Desjardins et al. 2010) with ``temperatures`` evenly spaced inverse temperatures.
        reuse_hidden: persistent Gibbs chains start their next sweep from p(h|v) computed
            with the gradient, before the update (as scikit-learn does): one matrix product
            fewer per step (about 10% faster) but measurably worse models (held-out AIS
            log-likelihood 2-5 nats lower on digits, 9 on Fashion-MNIST in our runs). The
            default recomputes it with the updated weights (Tieleman 2008).
        compile: run each step of a binary RBM with Gibbs chains as one graph compiled by
            ``torch.compile``, its random numbers hashed from a counter-based stream
            (:mod:`genphys.training.fused_cd`). True: always (eagerly where there is no C++
            compiler or ``GENPHYS_COMPILE=0``); False: never; "auto": on a CPU with a
            compiler, for float32/float64 models, when k x (batch + chains) x n_visible x
            n_hidden is at least :data:`~genphys.training.fused_cd.FUSE_MIN_WORK`. A resumed
            run keeps the mode its checkpoint was written in.
    """

    k: int = 1
    persistent: bool = False
    n_chains: int | None = None
    init_visible_bias: bool = True
    sampler: Literal["gibbs", "tempering"] = "gibbs"
    temperatures: int = 10
    reuse_hidden: bool = False
    compile: bool | str = "auto"

    def __post_init__(self) -> None:
        check(self.k >= 1, f"k must be >= 1, got {self.k}")
        check(
            isinstance(self.compile, bool) or self.compile == "auto",
            f"compile must be true, false or 'auto', got {self.compile!r}",
        )
        check(
            self.compile is not True or (self.sampler == "gibbs" and not self.reuse_hidden),
            "compile=True fuses steps with Gibbs chains (sampler 'gibbs', no reuse_hidden)",
        )
        check(self.n_chains is None or self.n_chains >= 1, "n_chains must be >= 1")
        check(self.temperatures >= 2, "temperatures must be >= 2")
        check(
            self.sampler == "gibbs" or self.persistent,
            "sampler 'tempering' keeps persistent chains: set persistent (--pcd)",
        )


@register_objective("cd")
class ContrastiveDivergence(Objective):
    r"""Minimise :math:`\langle F(v)\rangle_{data} - \langle F(v)\rangle_{model}`.

    Its gradient is the CD estimate of minus the log-likelihood gradient,
    :math:`-(\langle v h^\top\rangle_{data} - \langle v h^\top\rangle_{model})` for the weights,
    with the model term from k Gibbs sweeps (from the data, or from persistent chains).

    Large steps of a binary RBM run fused (``compile``; :mod:`genphys.training.fused_cd`).
    Otherwise, a PCD step with Gibbs chains allocates nothing: the chains live in the last
    rows of a [batch; chains] buffer and are advanced in place
    (:meth:`GibbsSampler.sample_`), p(h|v) of data and chains is one matrix product and the
    weight gradient another, both written into kept buffers, and the logged free-energy gap
    reuses that product. The random draws and the arithmetic are those of the allocating
    path: the same chains and weights, bit for bit.
    """

    Config = CDConfig
    config: CDConfig

    def __init__(self, config: CDConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.sampler: Any = (  # GibbsSampler or ParallelTemperingSampler
            ParallelTemperingSampler(cfg.temperatures, cfg.k)
            if cfg.sampler == "tempering"
            else GibbsSampler(cfg.k)
        )
        self.chains: Any = None  # GibbsState, TemperingState or (fused steps) CounterChains
        # buffers reused from step to step (no state: rebuilt after a resume)
        self._work: dict[str, Tensor] = {}  # the gradients and p(h|v)
        self._joint: Tensor | None = None  # [batch; persistent Gibbs chains]
        self._chain_rows: Tensor | None = None
        self._coef: Tensor | None = None
        self._coef_key: tuple[Any, ...] = ()
        self._compile_graph = False  # fused steps: compiled (True) or eager
        self._sgd: tuple[Any, list[Tensor]] | None = None  # fused SGD's settings as tensors

    def setup(self, model: nn.Module, train: Tensor, seed: int, rank: int, batch_size: int) -> None:
        rbm = as_rbm(model)
        cfg = self.config
        if cfg.init_visible_bias:
            rbm.init_visible_bias(train)
        seed = derive_seed(seed, 17, rank)
        self._compile_graph = kernels.compiler_available()
        chains = (cfg.n_chains or batch_size) if cfg.persistent else batch_size
        if cfg.persistent:
            self.chains = self.sampler.init_state(rbm, chains, seed)
        if self._fuse(rbm, batch_size + chains):
            self.chains = CounterChains(self.chains.v if cfg.persistent else None, seed)

    def _fuse(self, rbm: RBMBase, rows: int) -> bool:
        """Whether steps run as one compiled graph (:mod:`genphys.training.fused_cd`)."""
        cfg = self.config
        if cfg.compile is True:
            if not isinstance(rbm, BernoulliRBM):
                raise GenphysError(f"compile=True needs a BernoulliRBM, got {type(rbm).__name__}")
            return True
        return (
            cfg.compile == "auto"
            and cfg.sampler == "gibbs"
            and not cfg.reuse_hidden
            and isinstance(rbm, BernoulliRBM)
            and rbm.weight.device.type == "cpu"
            and rbm.weight.dtype in (torch.float32, torch.float64)
            and cfg.k * rows * rbm.n_visible * rbm.n_hidden >= FUSE_MIN_WORK
            and kernels.compiler_available()
        )

    def step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        model = as_rbm(ctx.model)
        n = batch.shape[0]
        if isinstance(self.chains, CounterChains):  # one compiled graph
            assert isinstance(model, BernoulliRBM)
            m = n if self.chains.v is None else self.chains.v.shape[0]
            coef = self._coefficients(n, m, batch)
            sgd = self._fused_sgd(ctx, model)
            if sgd is not None:  # the SGD step too
                bias = model.visible_bias.detach().clone() if ctx.measure else None
                k, compile_ = self.config.k, self._compile_graph
                x, pre, total = fused_sgd_step(
                    model, batch, self.chains, coef, sgd[0], k, compile_, momentum=sgd[1]
                )
                ctx.stepped("model")
                if not math.isfinite(total.item()):
                    raise TrainingDiverged("the model parameters became non-finite")
                if bias is None:
                    return {}
                with torch.no_grad():  # F(x) = -x b - sum_j softplus(c + xW)_j, before the step
                    f = -(x @ bias) - torch.nn.functional.softplus(pre).sum(-1)
                return {"free_energy_gap": f @ coef}
            grads, x, pre = fused_step(
                model, batch, self.chains, coef, self.config.k, self._compile_graph
            )
            metrics = {}
            if ctx.measure:
                with torch.no_grad():
                    metrics["free_energy_gap"] = model.free_energy(x, hidden_input=pre) @ coef
            ctx.apply_gradients("model", grads)
            return metrics
        if isinstance(self.chains, GibbsState):  # persistent Gibbs chains: no allocations
            x = self._joint_batch(batch)  # rows n: are the chains, advanced in place
            self.sampler.sample_(model, self.chains)
            x[:n].copy_(batch)
        else:
            if self.chains is not None:
                negative, self.chains = self.sampler.sample(model, self.chains)
            else:
                negative, _ = self.sampler.sample(model, GibbsState(batch, ctx.generator))
            x = torch.cat([batch, negative])
        coef = self._coefficients(n, x.shape[0] - n, x)
        grads, prob = model.free_energy_grads(x, coef, out=self._work)
        metrics = {}
        if ctx.measure:  # F(data) - F(model): the quantity whose gradient is followed
            with torch.no_grad():  # c + xW as the gradient computed it (Bernoulli RBM)
                f = model.free_energy(x, hidden_input=self._work.get("hidden_input"))
                metrics["free_energy_gap"] = f @ coef
        if isinstance(self.chains, GibbsState) and self.config.reuse_hidden:
            self.chains.hidden = prob[n:]  # the next sweep starts from these (sklearn's scheme)
        ctx.apply_gradients("model", grads)
        return metrics

    def _fused_sgd(self, ctx: StepContext, model: BernoulliRBM) -> tuple[Tensor, Any] | None:
        """The ``lr`` and ``momentum`` arguments of :func:`fused_sgd_step` (momentum settings
        with the optimizer's buffers when there is momentum or weight decay, else None) when
        a fused step may apply SGD itself (one process, every parameter trained), else None. The
        hyperparameters are 0-d tensors (kept while they do not change): a schedule does not
        recompile the graph."""
        sgd = ctx.sgd_settings("model")
        names = ["weight", "visible_bias", "hidden_bias"]
        if sgd is None or not all(getattr(model, n).requires_grad for n in names):
            return None
        w = model.weight
        key = (sgd, w.dtype, w.device)
        if self._sgd is None or self._sgd[0] != key:
            numbers = (sgd.lr, sgd.momentum, sgd.weight_decay)
            self._sgd = (key, [torch.tensor(v, dtype=w.dtype, device=w.device) for v in numbers])
        lr, momentum, decay = self._sgd[1]
        if sgd.momentum == 0 and sgd.weight_decay == 0:
            return lr, None
        buffers = tuple(ctx.momentum_buffers("model", names))
        return lr, (momentum, decay, buffers, sgd.nesterov)

    def _joint_batch(self, batch: Tensor) -> Tensor:
        """The (batch + chains, n_visible) buffer whose last rows hold the persistent chains.

        The chains live there (``self.chains.v`` is a view of those rows), so the data and the
        chains go through one matrix product for p(h|v) and one for the weight gradient without
        a concatenation. Made again when the batch size changes or the chains were replaced
        (a checkpoint loaded).
        """
        n, v = batch.shape[0], self.chains.v
        x = self._joint
        if x is None or x.shape[0] != n + v.shape[0] or v is not self._chain_rows:
            x = torch.empty((n + v.shape[0], *v.shape[1:]), dtype=v.dtype, device=v.device)
            x[n:] = v
            self._joint, self._chain_rows = x, x[n:]
            self.chains.v = self._chain_rows
        return x

    def _coefficients(self, n: int, m: int, like: Tensor) -> Tensor:
        """1/n for the n data rows, -1/m for the m model rows (kept while n, m do not change)."""
        key = (n, m, like.dtype, like.device)
        if self._coef is None or self._coef_key != key:
            self._coef = torch.cat([like.new_full((n,), 1 / n), like.new_full((m,), -1 / m)])
            self._coef_key = key
        return self._coef

    @torch.no_grad()
    def validate(self, model: nn.Module, data: Tensor) -> dict[str, float]:
        from genphys.evaluation import pseudo_log_likelihood, reconstruction_error

        rbm = as_rbm(model)
        out = {
            "recon_error": reconstruction_error(rbm, data).value,
            "free_energy": float(rbm.free_energy(data).mean()),
        }
        if rbm.binary_visible:
            g = torch.Generator(device=data.device).manual_seed(0)
            out["pseudo_log_likelihood"] = pseudo_log_likelihood(rbm, data, generator=g).value
        return out

    def state_dict(self) -> dict[str, Tensor]:
        if self.chains is None:
            return {}
        return {f"chains.{k}": v for k, v in self.chains.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the chains, and with them the mode the checkpoint was written in (fused or
        not), so that a resumed run continues exactly."""
        sub = {k.removeprefix("chains."): v for k, v in state.items()}
        now = getattr(self.chains, "v", None)  # as setup made them for this run
        device = now.device if now is not None else "cpu"
        if "counter" in sub:  # written by fused steps
            self.chains = CounterChains.from_state_dict(sub, device)
        elif self.config.persistent:
            cls = TemperingState if self.config.sampler == "tempering" else GibbsState
            self.chains = cls.from_state_dict(sub, device)
        else:  # CD written by eager steps
            self.chains = None
        v = getattr(self.chains, "v", None)
        if now is not None and v is not None and (v.shape, v.dtype) != (now.shape, now.dtype):
            raise GenphysError(
                f"the checkpoint's chains are {tuple(v.shape)} {v.dtype}; this run's are "
                f"{tuple(now.shape)} {now.dtype}"
            )


def build_objective(name: str, config: dict[str, Any] | None = None) -> Objective:
    """An objective by registered name with a config dict."""
    from genphys.registry import OBJECTIVES, lookup

    cls = lookup(OBJECTIVES, name, "objective")
    return cls(cls.Config.from_dict(config or {}))


@register_objective("autoencoder")
class AutoencoderObjective(Objective):
    r"""Minimise the model's mean per-example loss: the negative beta-ELBO of a VAE,
    :math:`-E_{q(z|x)}[\log p(x|z)] + \beta\,KL(q(z|x)\,\|\,p(z))` (one reparameterised
    sample), or the reconstruction loss of an autoencoder. The model's forward (through DDP
    when distributed) returns the loss and its terms; all are logged."""

    def step(self, ctx: StepContext, batch: Tensor) -> dict[str, Tensor]:
        out = ctx.forward(batch)
        loss = out["loss"].mean()
        ctx.update("model", loss)
        return {k: v.detach().mean() for k, v in out.items()}

    @torch.no_grad()
    def validate(self, model: nn.Module, data: Tensor) -> dict[str, float]:
        if not isinstance(model, (VAE, Autoencoder)):
            raise GenphysError(
                f"the autoencoder objective needs a VAE or autoencoder, got {type(model).__name__}"
            )
        g = torch.Generator(device=data.device).manual_seed(0)
        sums: dict[str, float] = {}
        from genphys.evaluation import latent_reconstruction_error

        for block in data.split(1024):
            terms = model.elbo_terms(block, g) if isinstance(model, VAE) else model(block)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.sum())
        metrics = {k: v / len(data) for k, v in sums.items()}
        metrics["recon_error"] = latent_reconstruction_error(model, data).value
        return metrics

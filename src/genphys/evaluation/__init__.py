"""Evaluation: partition functions, likelihoods and their proxies; Monte Carlo error analysis."""

from genphys.evaluation.latent import (
    active_units,
    elbo_estimate,
    iwae_log_likelihood,
    iwae_nll,
    kl_per_dimension,
    latent_reconstruction_error,
)
from genphys.evaluation.likelihood import (
    AISResult,
    ais_log_partition,
    ais_schedule,
    average_log_likelihood,
    exact_log_partition,
)
from genphys.evaluation.proxies import (
    conditional_log_probs,
    pseudo_log_likelihood,
    pseudo_log_likelihood_terms,
    reconstruction_error,
)
from genphys.evaluation.quality import (
    MMDResult,
    ModeCoverage,
    fid,
    frechet_distance,
    gaussian_frechet_distance,
    inception_score,
    inception_score_from_probs,
    median_bandwidth,
    mmd,
    mode_coverage,
)
from genphys.evaluation.stats import (
    Estimate,
    autocorrelation,
    binning_error,
    integrated_autocorrelation_time,
    log_mean_exp_estimate,
    mcmc_estimate,
    mean_estimate,
)

__all__ = [
    "AISResult",
    "Estimate",
    "MMDResult",
    "ModeCoverage",
    "active_units",
    "ais_log_partition",
    "ais_schedule",
    "autocorrelation",
    "average_log_likelihood",
    "binning_error",
    "conditional_log_probs",
    "elbo_estimate",
    "exact_log_partition",
    "fid",
    "frechet_distance",
    "gaussian_frechet_distance",
    "inception_score",
    "inception_score_from_probs",
    "integrated_autocorrelation_time",
    "iwae_log_likelihood",
    "iwae_nll",
    "kl_per_dimension",
    "latent_reconstruction_error",
    "log_mean_exp_estimate",
    "mcmc_estimate",
    "mean_estimate",
    "median_bandwidth",
    "mmd",
    "mode_coverage",
    "pseudo_log_likelihood",
    "pseudo_log_likelihood_terms",
    "reconstruction_error",
]

"""Physics: the 2-D Ising model (Monte Carlo, exact results, observables)."""

"""Physics: the 2-D Ising model (Monte Carlo, exact results, observables, datasets, model
comparison) and variational Monte Carlo with RBM wavefunctions (electrons in a harmonic trap,
the transverse-field Ising chain)."""

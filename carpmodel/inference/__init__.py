"""Estimation: the parameter map, likelihood, fit, batched refit, posterior, fitted states."""

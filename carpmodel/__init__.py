"""carpmodel: an age-structured population model of the Qinghai Lake naked carp.

Fit to the hydroacoustic biomass record since 2000, force with temperature, and compare
hatchery-release strategies in stochastic projections. See README.md for the quick start.
"""

__version__ = "0.1.0"

"""carpmodel: an age-structured population model of the Qinghai Lake naked carp.

Fit to the hydroacoustic biomass record since 2000, force with temperature, and compare
hatchery-release strategies in stochastic projections. See README.md for the quick start.
"""

import copyreg as _copyreg
import types as _types

__version__ = "0.1.0"


def _read_only_mapping(contents: dict) -> _types.MappingProxyType:
    return _types.MappingProxyType(contents)


# Frozen carpmodel objects keep their mappings read-only as MappingProxyType, which pickle
# cannot serialise; dask.distributed pickles them to ship work to workers. Reduce a
# mappingproxy to a proxy of a plain dict copy (same contents, still read-only).
_copyreg.pickle(_types.MappingProxyType, lambda proxy: (_read_only_mapping, (dict(proxy),)))

"""Ensemble files: the ``[ensemble]`` table of a TOML file into an
:class:`~carpmodel.management.ensemble.EnsembleDefinition` (its keys are that type's fields)."""

from __future__ import annotations

from pathlib import Path

from carpmodel.errors import ConfigError
from carpmodel.io.config import from_mapping, read_toml
from carpmodel.management.ensemble import EnsembleDefinition

__all__ = ["load_ensemble"]


def load_ensemble(path: str | Path) -> EnsembleDefinition:
    """An :class:`EnsembleDefinition` from the ``[ensemble]`` table of a TOML file (errors name the
    file and the dotted key)."""
    path = Path(path)
    document = read_toml(path, "ensemble file")
    extra = [k for k in document if k != "ensemble"]
    if extra:
        raise ConfigError(f"{path}, key {extra[0]}: unknown key; valid top-level keys: ensemble")
    if "ensemble" not in document:
        raise ConfigError(f"{path}, key ensemble: missing; expected an [ensemble] table")
    return from_mapping(EnsembleDefinition, document["ensemble"], str(path), prefix="ensemble")

"""Management questions: release strategies, climate scenarios, projections, metrics, ensembles."""

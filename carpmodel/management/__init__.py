"""Management questions: release strategies and their engine policy, climate scenarios, projections,
metrics, ensembles, release budgets."""

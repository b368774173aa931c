"""Studies built on a fit: recovery attribution, climate sensitivity, monitoring design."""

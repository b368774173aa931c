"""The population model: parameters, biological processes and the year loop (pure numpy)."""

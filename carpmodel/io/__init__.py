"""Reading and writing: data files, run configuration, atomic output writers."""

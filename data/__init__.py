"""The bundled data directory, shipped as package data (``importlib.resources.files("carpmodel.data")``)."""

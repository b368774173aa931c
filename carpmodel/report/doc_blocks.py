"""Generated blocks in the experiments' READMEs: the text between a start marker and
:data:`END` is written by the experiment's script from its results file, never by hand
(``tests/test_docs.py`` checks that the block is what the script renders)."""

from __future__ import annotations

#: the line that ends every generated block
END = "<!-- end of generated block -->"


def start_marker(name: str) -> str:
    """The line that opens the generated block ``name`` (with its newline)."""
    return f"<!-- {name}: generated, do not edit by hand -->\n"


def replace_block(readme: str, name: str, block: str) -> str:
    """``readme`` with the generated block ``name`` replaced by ``block``; a ``ValueError`` names
    the marker when the README does not have it."""
    start = start_marker(name)
    if start not in readme or END not in readme:
        raise ValueError(f"README has no generated block {start.strip()!r} ... {END!r}")
    begin = readme.index(start) + len(start)
    return readme[:begin] + block + readme[readme.index(END, begin):]


def machine_record() -> dict:
    """When and where a generated figure was computed: date (UTC), versions and the machine's
    load, stored beside the figures in an experiment's results record."""
    import os
    import platform
    from datetime import UTC, datetime

    import numpy
    import scipy

    import carpmodel

    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "carpmodel": carpmodel.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__, "python": platform.python_version(),
            "load_average": list(os.getloadavg()), "cpus": os.cpu_count()}

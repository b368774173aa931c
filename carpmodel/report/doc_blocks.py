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

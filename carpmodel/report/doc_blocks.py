"""Generated blocks in the experiments' READMEs: the text between a start marker and
:data:`END` is written by the experiment's script from its results file, never by hand
(``tests/test_docs.py`` checks that the block is what the script renders)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

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


def docs_script(*, description: str, source: tuple[str, str, str], readme: Path, block: str,
                read_run: Callable[[argparse.Namespace], dict], markdown: Callable[[dict], str],
                options: tuple[tuple[str, dict], ...] = (),
                dump: Callable[[dict], str] = lambda record: json.dumps(record, indent=1),
                after: Callable[[dict], None] | None = None) -> int:
    """The command line every experiment's docs script shares: read a run (``source``: the
    positional argument's name and help) into a record, or a saved record (``--from-json``);
    write the record (``--json``, by ``dump``); print the README block ``markdown`` renders and,
    with ``--write-readme``, put it between the markers of ``block`` in ``readme``. ``options``
    are extra ``(flag, add_argument keywords)``; ``read_run`` gets the parsed arguments (the
    positional one is ``args.source``); ``after`` runs last on the record. Returns 0."""
    parser = argparse.ArgumentParser(description=description)
    name, help_text, what = source
    parser.add_argument("source", metavar=name, type=Path, nargs="?", help=help_text)
    for flag, keywords in options:
        parser.add_argument(flag, **keywords)
    parser.add_argument("--json", type=Path, help="write the record here")
    parser.add_argument("--from-json", type=Path, help="print the README block of a saved record")
    parser.add_argument("--write-readme", action="store_true", help="put the block into README.md")
    args = parser.parse_args()
    if args.from_json:
        record = json.loads(args.from_json.read_text())
    elif args.source:
        record = read_run(args)
        if args.json:
            args.json.write_text(dump(record) + "\n")
    else:
        parser.error(f"give {what} or --from-json FILE")
    text = markdown(record)
    if args.write_readme:
        readme.write_text(replace_block(readme.read_text(), block, text))
    print(text, end="")
    if after is not None:
        after(record)
    return 0

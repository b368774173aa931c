"""``python -m carpmodel`` runs the command-line interface."""

from carpmodel.cli import main

raise SystemExit(main())

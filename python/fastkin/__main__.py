"""``python -m fastkin ...`` is the ``fastkin`` command line."""

from .cli import main

raise SystemExit(main())

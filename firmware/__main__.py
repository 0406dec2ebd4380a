"""``python -m firmware``: see :mod:`firmware.cli`."""

from .cli import main

raise SystemExit(main())

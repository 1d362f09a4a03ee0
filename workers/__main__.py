"""`python -m workers …`: see workers/cli.py."""

from workers.cli import main

raise SystemExit(main())

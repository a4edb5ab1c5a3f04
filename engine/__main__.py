"""`python -m engine` is the same as the `ins-engine` console script."""

from engine.cli import main

raise SystemExit(main())

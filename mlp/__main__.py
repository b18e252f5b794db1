"""`python -m mlp`: the same as the `mlp` command (the container recipe runs the server this way)."""
from .cli import main

raise SystemExit(main())

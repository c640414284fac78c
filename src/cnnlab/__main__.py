"""``python -m cnnlab ...``: the same CLI as the ``cnnlab`` command (for environments without its script on PATH)."""
from cnnlab.cli.main import main

raise SystemExit(main())

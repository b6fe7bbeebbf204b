"""``python -m posemb`` (also what ``torchrun ... -m posemb train`` runs)."""

import atexit
import os
import sys

from .cli.main import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # Under torchrun, skip interpreter teardown: gloo/DDP C++ threads destroyed during
    # finalisation can abort ("terminate called without an active exception") after a run
    # that finished cleanly. Everything the run wrote is already fsynced.
    atexit._run_exitfuncs()  # Python-level exit handlers still run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)

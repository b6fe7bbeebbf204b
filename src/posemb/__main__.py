"""``python -m posemb`` (also what ``torchrun ... -m posemb train`` runs)."""

import sys

from .cli.main import main

sys.exit(main())

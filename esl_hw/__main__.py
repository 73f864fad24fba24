"""``python -m esl_hw`` runs the command line."""

import sys

from esl_hw.cli import main

sys.exit(main())

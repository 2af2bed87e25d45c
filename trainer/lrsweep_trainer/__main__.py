"""`python -m lrsweep_trainer`."""

from lrsweep_trainer.cli import main

raise SystemExit(main())

"""`python -m realisid_batch …`"""
import sys

from .cli import main

sys.exit(main())

"""``python -m kexue_ref.certify``: certify fresh records of the current oracle (see ``_run``)."""
import sys

from kexue_ref.certify._run import main

sys.exit(main())

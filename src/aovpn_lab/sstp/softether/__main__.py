"""``python -m aovpn_lab.sstp.softether up|down|status|patch``: see :mod:`.cli`."""
import sys

from .cli import main

sys.exit(main())

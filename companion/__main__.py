import sys

from . import numerics

numerics.pin()  # before anything imports torch: `verify` recomputes results in this process

from .pipeline import main  # noqa: E402 (after the pin, on purpose)

sys.exit(main())

"""Every pytest run of this repository (unit tests, nbval's re-executed chapters) computes under
the book's pinned numerics: the variables must be set before torch is first imported, here
and in the kernels nbval starts (see companion/numerics.py)."""

import sys

from companion import numerics

if "torch" in sys.modules:  # too late: torch has read its kernel choice already
    raise RuntimeError("conftest.py: torch was imported before the numerics were pinned")
numerics.pin()

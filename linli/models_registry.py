"""Imports every domain's models so that Alembic and tests see the whole schema."""

from __future__ import annotations

from linli.access import models as _access  # noqa: F401
from linli.consultation import models as _consultation  # noqa: F401
from linli.core import audit as _audit  # noqa: F401  (AuditHead)
from linli.core import models as _core  # noqa: F401
from linli.core.db import Base
from linli.iot import models as _iot  # noqa: F401
from linli.people import models as _people  # noqa: F401
from linli.safety import models as _safety  # noqa: F401
from linli.vehicles import models as _vehicles  # noqa: F401
from linli.waste import models as _waste  # noqa: F401
from linli.workorders import models as _workorders  # noqa: F401

metadata = Base.metadata

"""What every service call receives: the open transaction, who acts, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mechanisms.core.identity import Principal


@dataclass
class Ctx:
    session: Session
    principal: Principal
    # One instant per unit of work, so every record it writes agrees on the time.
    now: datetime

"""The `curation` group schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ftx.errors import require


@dataclass
class CurationConfig:
    """Which curation stages run, in order."""

    enabled: bool = False
    """Run curation at all (off: records go to the split as loaded)."""
    stages: List[str] = field(default_factory=list)
    """Stage names in the order they run."""

    def check(self) -> None:
        require(not self.enabled or bool(self.stages), "curation.stages",
                "is empty while curation.enabled=true (list at least one stage)")

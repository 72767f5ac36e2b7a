"""The ledger: every record that enters a stage leaves it kept or dropped with a reason.

For every stage `in == kept + dropped` holds by construction; `check()` asserts it, and the run
directory gets `ledger.json` (counts per stage and reason) and `dropped.jsonl` (the records).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional
from ftx.runs import atomic_write_text


@dataclass
class StageCount:
    name: str
    n_in: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    modified: Counter = field(default_factory=Counter)
    """Records kept but changed (e.g. PII masked), by reason."""

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict:
        return {"stage": self.name, "in": self.n_in, "kept": self.kept, "dropped": self.n_dropped,
                "dropped_by_reason": dict(self.dropped), "modified_by_reason": dict(self.modified)}


class Ledger:
    def __init__(self) -> None:
        self.stages: dict[str, StageCount] = {}
        self.dropped_records: list[dict] = []
        self.data_version: Optional[dict] = None
        """The content-addressed version of the curated records (ftx/data/versions.py)."""

    def _stage(self, stage: str) -> StageCount:
        return self.stages.setdefault(stage, StageCount(stage))

    def record_in(self, stage: str, n: int) -> None:
        self._stage(stage).n_in += n

    def keep(self, stage: str, n: int = 1) -> None:
        self._stage(stage).kept += n

    def drop(self, stage: str, reason: str, record: Optional[dict] = None,
             score: Optional[float] = None, detail: Any = None) -> None:
        st = self._stage(stage)
        st.dropped[reason] += 1
        entry = {"stage": stage, "reason": reason}
        if score is not None:
            entry["score"] = float(score)
        if detail is not None:
            entry["detail"] = detail
        if record is not None:
            entry["id"] = record.get("id")
            entry["source"] = record.get("source")
            entry["record"] = record
        self.dropped_records.append(entry)

    def count_dropped(self, stage: str, reason: str, n: int) -> None:
        """Count drops whose records are kept elsewhere (the dropped/ shards of a Ray curation run)."""
        self._stage(stage).dropped[reason] += n

    def cause(self, role: Optional[str] = None, stages: Optional[tuple] = None) -> str:
        """Which stage dropped the most (of records with this role, when given), for a message explaining
        an empty result: "stage 'curate:relevance' dropped 60 (off_domain=60)"; "" when no stage dropped any."""
        by_stage: dict[str, Counter] = {}
        for d in self.dropped_records:
            rec = d.get("record") or {}
            if (role is None or rec.get("role") == role) and (stages is None or d["stage"] in stages):
                by_stage.setdefault(d["stage"], Counter())[d["reason"]] += 1
        if not by_stage:
            return ""
        stage, reasons = max(by_stage.items(), key=lambda kv: sum(kv[1].values()))
        more = [f"{s!r} {sum(c.values())}" for s, c in by_stage.items() if s != stage]
        return (f"stage {stage!r} dropped {sum(reasons.values())} ({', '.join(f'{k}={v}' for k, v in reasons.most_common())})"
                + (f"; also {', '.join(more)}" if more else ""))

    def modify(self, stage: str, reason: str, n: int = 1) -> None:
        self._stage(stage).modified[reason] += n

    def run(self, stage: str, records: Iterable[dict], decide) -> list[dict]:
        """Apply `decide(record) -> None | (reason, score)` and account for every record."""
        kept = []
        for rec in records:
            self.record_in(stage, 1)
            verdict = decide(rec)
            if verdict is None:
                kept.append(rec)
                self.keep(stage)
            else:
                reason, score = verdict
                self.drop(stage, reason, rec, score)
        return kept

    def check(self) -> None:
        for st in self.stages.values():
            if st.n_in != st.kept + st.n_dropped:
                raise AssertionError(f"ledger: stage {st.name}: in={st.n_in} != kept={st.kept} + dropped={st.n_dropped}")

    def summary(self) -> list[dict]:
        return [st.as_dict() for st in self.stages.values()]

    def write(self, out_dir: Path) -> None:
        self.check()
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "ledger.json", json.dumps(self.summary(), indent=2))
        atomic_write_text(out_dir / "dropped.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.dropped_records))

"""near_dedup: exact verification, no chaining of drops, the rensa backend behind the same stage."""

from __future__ import annotations

import sys

import pytest

from ftx.errors import ConfigError
from tests.unit.test_curate import config, curate, drops, rec

BASE = ("The kernel keeps a table of open files for each process, and every entry points to an open file "
        "description that holds the file offset and the status flags set when the file was opened.")


PARTS = ["The kernel keeps a table of open files for each process.",
         "Every entry points to an open file description with the offset.",
         "Signals are delivered to a thread chosen by the kernel itself.",
         "A pending signal stays pending until the thread unblocks it.",
         "Pipes carry a byte stream from one process to another one."]


def _chain() -> list[dict]:
    """a ~ b and b ~ c (two of three sentences shared), but a is not a near-duplicate of c (one shared)."""
    return [rec("a", " ".join(PARTS[0:3])), rec("b", " ".join(PARTS[1:4])), rec("c", " ".join(PARTS[2:5]))]


@pytest.mark.parametrize("backend", ["datasketch", "rensa"])
def test_a_record_is_dropped_only_for_a_record_it_nearly_duplicates(backend):
    records = _chain()
    cfg = config("near_dedup", near_dedup={"threshold": 0.4, "backend": backend})
    res, ledger = curate(records, cfg)
    d = drops(ledger, "near_dedup")
    assert set(d) == {"b"} and d["b"]["detail"].startswith("near-duplicate of a")
    assert 0.4 <= d["b"]["score"] < 1
    kept = {r["id"]: r for r in res.kept}
    assert set(kept) == {"a", "c"}
    assert kept["a"]["cluster"] == kept["c"]["cluster"]  # one component: the splitter keeps it in one split


@pytest.mark.parametrize("backend", ["datasketch", "rensa"])
def test_both_backends_find_natural_edits_and_leave_distinct_records(backend):
    edits = [BASE.replace("process", "Process"), BASE.replace(", and", ",\nand"), BASE + " See also dup(2).",
             BASE.replace("kernel", "kernel 6.1")]
    distinct = ["Pipes carry a byte stream from one process to another; a write to a full pipe blocks.",
                "A socket is an endpoint for communication; it has a domain, a type and a protocol."]
    records = [rec("orig", BASE)] + [rec(f"e{i}", t) for i, t in enumerate(edits)] + \
        [rec(f"x{i}", t) for i, t in enumerate(distinct)]
    res, ledger = curate(records, config("near_dedup", near_dedup={"backend": backend}))
    d = drops(ledger, "near_dedup")
    assert set(d) == {"e0", "e1", "e2", "e3"}
    assert all(x["detail"].startswith("near-duplicate of orig") and x["score"] >= 0.5 for x in d.values())


def test_rensa_backend_without_rensa_is_one_line_naming_the_key(monkeypatch):
    monkeypatch.setitem(sys.modules, "rensa", None)  # import rensa now raises ImportError
    with pytest.raises(ConfigError, match=r"^curation\.near_dedup\.backend: rensa is not installed"):
        curate([rec("a", BASE), rec("b", BASE + " x")], config("near_dedup", near_dedup={"backend": "rensa"}))


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="curation.near_dedup.backend: must be one of datasketch, rensa; got 'minhashx'"):
        config("near_dedup", near_dedup={"backend": "minhashx"})

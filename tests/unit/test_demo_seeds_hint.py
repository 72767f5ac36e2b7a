"""The shipped curation's relevance seeds are the HTTP demo's: a user's own domain data that loses most of
its records to them is told why and what to set (ftx/data/build.py demo_seeds_hint)."""

from __future__ import annotations

from ftx.data.build import demo_seeds_hint
from ftx.data.ledger import Ledger
from ftx.spec.curation import CurationConfig, RelevanceConfig
from ftx.spec.data import DataConfig, SourceConfig


def _ledger(dropped: int) -> Ledger:
    ledger = Ledger()
    for i in range(dropped):
        ledger.drop("curate:relevance", "off_domain", {"id": str(i), "role": "domain", "source": "mine"}, 0.1)
    return ledger


def _curation(seeds) -> CurationConfig:
    return CurationConfig(enabled=True, stages=["normalize", "relevance"], relevance=RelevanceConfig(seeds=seeds))


def test_own_data_losing_most_records_to_the_demo_seeds_is_told_what_to_set():
    data = DataConfig(sources={"mine": SourceConfig(path="/data/faq.jsonl")})
    hint = demo_seeds_hint(data, _curation(["asset:demo/http_seeds.jsonl"]), _ledger(30), domain_in=40)
    assert hint.startswith("relevance dropped 30 of 40 domain records")
    assert "data.sources.mine" in hint and "curation.relevance.seeds=[seeds.jsonl]" in hint and "curation=light" in hint


def test_no_hint_for_the_demo_data_own_seeds_few_drops_or_relevance_off():
    demo = DataConfig(sources={"http": SourceConfig(path="asset:demo/http_train.jsonl")})
    mine = DataConfig(sources={"mine": SourceConfig(path="/data/faq.jsonl")})
    demo_seeds = _curation(["asset:demo/http_seeds.jsonl"])
    assert demo_seeds_hint(demo, demo_seeds, _ledger(30), 40) is None  # the demo data itself
    assert demo_seeds_hint(mine, _curation(["/data/seeds.jsonl"]), _ledger(30), 40) is None  # the user's seeds
    assert demo_seeds_hint(mine, demo_seeds, _ledger(10), 40) is None  # a quarter or less dropped
    off = CurationConfig(enabled=True, stages=["normalize"], relevance=RelevanceConfig(seeds=["asset:demo/x.jsonl"]))
    assert demo_seeds_hint(mine, off, _ledger(30), 40) is None

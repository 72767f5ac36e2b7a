"""Curation stages on crafted inputs: each stage's effect, the ledger identity, synthetic marks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftx.data.curate.pipeline import run
from ftx.data.ledger import Ledger
from ftx.errors import ConfigError, DataError
from ftx.spec.curation import CurationConfig

HTTP = [
    "The HTTP 404 status code means the server cannot find the requested resource on the origin server.",
    "A 301 redirect tells clients and caches that the resource moved permanently to the Location header URL.",
    "The Cache-Control header with max-age sets how long a response stays fresh in a browser cache.",
    "Cookies are set by the server with the Set-Cookie response header and sent back in the Cookie header.",
    "A conditional GET with If-None-Match lets the server answer 304 Not Modified when the ETag matches.",
    "The Content-Type header tells the client the media type of the response body, such as text/html.",
]


def rec(rid, text=None, role="domain", synthetic=False, messages=None, **extra) -> dict:
    return {"id": str(rid), "source": "t", "role": role, "synthetic": synthetic, "weight": 1.0,
            "messages": messages, "text": None if messages else text, **extra}


def chat(rid, q, a, **kw) -> dict:
    return rec(rid, messages=[{"role": "user", "content": q}, {"role": "assistant", "content": a}], **kw)


def config(*stages, tmp: Path = None, **sections) -> CurationConfig:
    cfg = CurationConfig(enabled=True, stages=list(stages), cache_dir=str(tmp / "cache") if tmp else None)
    for name, values in sections.items():
        section = getattr(cfg, name)
        for k, v in values.items():
            setattr(section, k, v)
    cfg.check()
    return cfg


def curate(records, cfg):
    ledger = Ledger()
    res = run(records, cfg, ledger)
    ledger.check()
    return res, ledger


def drops(ledger, stage):
    return {d["id"]: d for d in ledger.dropped_records if d["stage"] == f"curate:{stage}"}


def assert_accounts_for_everything(records, res, ledger):
    """Every input record ends kept or dropped exactly once; every stage has in = kept + dropped."""
    kept = [r["id"] for r in res.kept]
    dropped = [d["id"] for d in ledger.dropped_records]
    assert sorted(kept + dropped) == sorted(r["id"] for r in records)
    for s in ledger.summary():
        assert s["in"] == s["kept"] + s["dropped"], s
    stages = [s for s in ledger.summary() if s["stage"].startswith("curate:")]
    for a, b in zip(stages, stages[1:]):
        assert b["in"] == a["kept"], (a, b)


def test_normalize_repairs_text_and_chat_messages():
    records = [
        rec(1, "The server sent cafÃ© and naÃ¯ve in its response body to the client."),  # mojibake
        rec(2, "Cafe\u0301 is decomposed here, which NFC composes into one character."),
        rec(3, "Zero\u200bwidth and bell\x07 characters   are removed;\r\ntrailing spaces too.   \n\n\n\nEnd."),
        chat(4, "What  does\u00a0HTTP 404 mean?", "Not Found: the server did not find the resource (Ã©)."),
        rec(5, " \u200b \n\t "),
        rec(6, "Already clean text stays exactly the same."),
    ]
    res, ledger = curate(records, config("normalize"))
    by = {r["id"]: r for r in res.kept}
    assert "café and naïve" in by["1"]["text"]
    assert by["2"]["text"].startswith("Caf\u00e9 ")
    assert by["3"]["text"] == "Zerowidth and bell characters are removed;\ntrailing spaces too.\n\nEnd."
    assert by["4"]["messages"][0]["content"] == "What does HTTP 404 mean?"
    assert by["4"]["messages"][1]["content"].endswith("(é).")
    assert by["6"]["text"] == records[5]["text"]
    assert drops(ledger, "normalize")["5"]["reason"] == "empty_text"
    mods = ledger.summary()[0]["modified_by_reason"]
    assert mods["mojibake"] == 2 and mods["nfc"] == 1 and mods["control_chars"] == 1 and mods["whitespace"] >= 2
    assert_accounts_for_everything(records, res, ledger)


def test_quality_drops_boilerplate_and_junk_but_keeps_code_and_lists():
    code = ("How to send a request with curl:\n```\ncurl -i -H 'Accept: */*' https://example.org/#top\n"
            "### ### ### ### ### ###\n```\nThe -i flag prints the response headers as well.")
    records = [
        rec("nav", "Home | About | Contact | Blog\nSkip to content\n© 2024 Example Inc. All rights reserved.\nPrivacy Policy"),
        rec("mixed", "Skip to content\nThe Vary header lists request headers that select a cached variant.\n"
                     "Caches store one response per variant.\nShare on Facebook"),
        rec("banner", "This website uses cookies. We use cookies to personalise content and to analyse our traffic. "
                      "By clicking Accept all you consent to our use of cookies. Accept all | Reject all | Settings."),
        rec("cookies", "The server sets cookies with Set-Cookie, and we use cookies to keep the session id between "
                       "requests. Share on: Twitter | Email."),
        rec("table", "Common codes:\n| Code | Meaning |\n|---|---|\n| 200 | OK |\n| 404 | Not Found |"),
        rec("short", "Yes."),
        rec("symbols", "#http #web #cache #headers #status #codes #rest #api #json #server #client"),
        rec("junk", "What is HTTP? ==== >>> ||| *** ~~~ <<< ==== $$$ %%% &&& !!! ??? ==== >>>"),
        rec("maths", "What is 7 factorial? 7 factorial is 5,040. It is 7 × 6 × 5 × 4 × 3 × 2 × 1."),
        rec("repeat", "\n".join(["Buy cheap HTTP hosting now", "Buy cheap HTTP hosting now",
                                 "Buy cheap HTTP hosting now", "HTTP servers answer requests"])),
        rec("ngram", " ".join(["the cache key is the url"] * 12)),
        rec("code", code),
        rec("list", "## Safe methods\n- GET retrieves a resource\n- HEAD is GET without a body\n"
                    "- OPTIONS lists the allowed methods\nSafe methods do not change server state."),
        rec("ok", HTTP[0]),
    ]
    res, ledger = curate(records, config("quality"))
    d = drops(ledger, "quality")
    assert d["nav"]["reason"] == d["banner"]["reason"] == "boilerplate"
    assert d["short"]["reason"] == "too_short"
    assert d["symbols"]["reason"] == "symbol_word_ratio"
    assert d["junk"]["reason"] == "alnum_word_frac"
    assert d["repeat"]["reason"] == "repeated_lines"
    assert d["ngram"]["reason"] == "repeated_ngrams"
    kept = {r["id"]: r for r in res.kept}
    assert set(kept) == {"mixed", "code", "list", "ok", "maths", "cookies", "table"}
    assert kept["mixed"]["text"] == ("The Vary header lists request headers that select a cached variant.\n"
                                     "Caches store one response per variant.")
    assert kept["code"]["text"] == code  # fenced code is exempt from the symbol check
    assert 0 < kept["ok"]["scores"]["quality"] <= 1 and kept["ok"]["scores"]["words"] == len(HTTP[0].split())
    assert ledger.summary()[0]["modified_by_reason"] == {"boilerplate_lines": 1}
    assert_accounts_for_everything(records, res, ledger)


def test_quality_too_long_record_is_dropped_with_its_size():
    records = [rec("big", "word " * 3000), rec("ok", HTTP[1])]
    res, ledger = curate(records, config("quality", quality={"max_chars": 10_000}))
    d = drops(ledger, "quality")["big"]
    assert d["reason"] == "too_long" and "15000 characters > max_chars=10000" in d["detail"]
    assert [r["id"] for r in res.kept] == ["ok"]


def test_language_filter_drops_confident_foreign_text_only():
    records = [
        rec("en", HTTP[2]),
        rec("de", "Der Server antwortet mit einem Statuscode, wenn die angeforderte Ressource nicht gefunden wurde."),
        rec("es", "El servidor devuelve un código de estado cuando no encuentra el recurso solicitado por el cliente."),
        rec("fr", "Le serveur renvoie un code d'état lorsque la ressource demandée par le client est introuvable."),
        rec("short", "GET /a HTTP/1.1"),
        chat("chat", "Was bedeutet der Statuscode 404 bei einer Anfrage an den Server?",
             "Die angeforderte Ressource wurde auf dem Server nicht gefunden."),
        rec("code", "```\nGET /index.html HTTP/1.1\nHost: example.org\nAccept-Language: de-DE\n```"),
    ]
    res, ledger = curate(records, config("language"))
    d = drops(ledger, "language")
    assert set(d) == {"de", "es", "fr", "chat"}
    assert d["de"]["detail"].startswith("de (p=") and d["de"]["score"] >= 0.8
    kept = {r["id"]: r for r in res.kept}
    assert set(kept) == {"en", "short", "code"}
    assert kept["en"]["scores"]["language"] > 0.8 and kept["short"]["scores"]["language"] == 0.0
    res2, _ = curate(records, config("language", language={"keep": ["en", "de"]}))
    assert {"de", "chat"} <= {r["id"] for r in res2.kept}


def test_pii_masks_personal_data_and_secrets_and_leaves_technical_text_alone():
    records = [
        rec("email", "Write to jane.doe+http@mail-server.co.uk for access to the HTTP API docs."),
        rec("phone", "Call +1 415-555-0199 or (415) 555-0142 or 020 7946 0958 for support."),
        rec("ip", "The client 8.8.4.4 and 2001:4860:4860::8888 hit the proxy at 10.0.0.5 and 127.0.0.1."),
        rec("docs", "Requests came from 203.0.113.77 via 192.168.1.20 and fe80::1."),
        rec("keys", "Use sk-proj-abcdefghijklmnop1234 or AKIAIOSFODNN7EXAMPLE; api_key=Zx81kLmn0pQr22Ab."),
        rec("bearer", "Send Authorization: Bearer eyJhbGciOi.eyJzdWIiOiIx.SflKxwRJSMeKKF2Q in the request."),
        rec("tech", "HTTP/1.1 200 OK on port 8080 at 12:30:45 on 2024-01-15, version 1.2.3, codes 404 500 502."),
        chat("chat", "My mail is bob@example.net", "Thanks, we will call 555-010-0199."),
    ]
    res, ledger = curate(records, config("pii"))
    k = {r["id"]: r for r in res.kept}
    assert k["email"]["text"] == "Write to <EMAIL> for access to the HTTP API docs."
    assert k["phone"]["text"] == "Call <PHONE> or <PHONE> or <PHONE> for support."
    assert k["ip"]["text"] == "The client <IP> and <IP> hit the proxy at 10.0.0.5 and 127.0.0.1."
    assert k["docs"]["text"] == "Requests came from <IP> via 192.168.1.20 and fe80::1."
    assert k["keys"]["text"] == "Use <API_KEY> or <API_KEY>; api_key=<API_KEY>."
    assert "Bearer <API_KEY>" in k["bearer"]["text"] and "eyJ" not in k["bearer"]["text"]
    assert k["tech"]["text"] == records[6]["text"]
    assert k["chat"]["messages"][0]["content"] == "My mail is <EMAIL>"
    assert k["chat"]["messages"][1]["content"] == "Thanks, we will call <PHONE>."
    mods = ledger.summary()[0]["modified_by_reason"]
    assert mods == {"pii_email": 2, "pii_phone": 2, "pii_ip": 2, "pii_api_key": 2}
    assert ledger.summary()[0]["dropped"] == 0
    res2, _ = curate(records, config("pii", pii={"allow_email_domains": ["example.net"], "mask_local_ips": True}))
    k2 = {r["id"]: r for r in res2.kept}
    assert k2["chat"]["messages"][0]["content"] == "My mail is bob@example.net"
    assert k2["ip"]["text"] == "The client <IP> and <IP> hit the proxy at <IP> and <IP>."


def test_blocklist_drops_listed_terms_as_whole_words(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("# compliance\nproject   nightingale\n")
    records = [rec("a", "This memo is INTERNAL USE ONLY and covers HTTP caching."),
               rec("b", "Project\nNightingale uses HTTP/2 server push for its pages."),
               rec("c", "Internal users only see the staging server."), rec("d", HTTP[3])]
    res, ledger = curate(records, config("blocklist", blocklist={"terms": ["internal use only"],
                                                                 "files": [str(terms)]}))
    d = drops(ledger, "blocklist")
    assert set(d) == {"a", "b"} and d["a"]["detail"] == "matched 'INTERNAL USE ONLY'"
    assert {r["id"] for r in res.kept} == {"c", "d"}


def test_exact_dedup_keeps_the_first_and_names_it():
    records = [rec("a", HTTP[0]), rec("b", HTTP[0].upper()), rec("c", "  " + HTTP[0].replace(" ", "   ")),
               rec("d", HTTP[1]), chat("e", "Q?", "A."), chat("f", "Q?", "A."), chat("g", "Q?", "B.")]
    res, ledger = curate(records, config("exact_dedup"))
    d = drops(ledger, "exact_dedup")
    assert set(d) == {"b", "c", "f"}
    assert d["b"]["detail"] == "duplicate of a" and d["f"]["detail"] == "duplicate of e"
    kept = {r["id"]: r for r in res.kept}
    assert set(kept) == {"a", "d", "e", "g"} and kept["a"]["cluster"] != kept["d"]["cluster"]
    res2, _ = curate(records, config("exact_dedup", exact_dedup={"lowercase": False}))
    assert "b" in {r["id"] for r in res2.kept}


LONG = ("When a browser requests a page it first checks its cache for a fresh copy and if the stored "
        "response is stale it sends a conditional request with the validators it kept so the origin "
        "server can answer with a short not modified status instead of the full body")


def test_near_dedup_clusters_near_duplicates_and_keeps_one_representative():
    records = [rec("a", LONG), rec("b", LONG.replace("browser", "client") + " again"),
               rec("c", "Today " + LONG.replace("short", "brief")), rec("d", HTTP[4]), rec("e", HTTP[5]),
               rec("f", LONG[: len(LONG) // 3])]
    res, ledger = curate(records, config("near_dedup", near_dedup={"shingle": 3, "threshold": 0.6}))
    d = drops(ledger, "near_dedup")
    assert set(d) == {"b", "c"}
    assert d["b"]["detail"].startswith("near-duplicate of a") and 0.6 <= d["b"]["score"] <= 1
    kept = {r["id"]: r for r in res.kept}
    assert set(kept) == {"a", "d", "e", "f"}
    assert len({r["cluster"] for r in res.kept}) == 4
    # longest representative, and tag mode keeps the members with one shared cluster id
    res2, ledger2 = curate(records, config("near_dedup", near_dedup={"shingle": 3, "threshold": 0.6, "keep": "longest"}))
    assert set(drops(ledger2, "near_dedup")) == {"a", "b"}  # c is the longest
    res3, _ = curate(records, config("near_dedup", near_dedup={"shingle": 3, "threshold": 0.6, "action": "tag"}))
    clusters = {r["id"]: r["cluster"] for r in res3.kept}
    assert len(res3.kept) == 6 and clusters["a"] == clusters["b"] == clusters["c"] != clusters["d"]


def test_full_pipeline_ledger_identity_and_synthetic_marks(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"text": t}) + "\n" for t in HTTP))
    records = [rec(i, t, synthetic=i % 2 == 0) for i, t in enumerate(HTTP)]
    records += [rec("dup", HTTP[0], synthetic=True), rec("de", "Der Server antwortet mit einem Statuscode, "
                                                                "wenn die Ressource nicht gefunden wurde."),
                rec("off", "Bananas are rich in potassium and make a great snack before a long run."),
                rec("gen", "The Eiffel Tower in Paris was completed in 1889 for the world fair.", role="general"),
                chat("syn", "What does the 304 status code mean in HTTP caching?",
                     "304 Not Modified: the cached response is still valid, mail me at a.b@mail.com.",
                     synthetic=True)]
    cfg = config("normalize", "quality", "language", "pii", "blocklist", "exact_dedup", "near_dedup", "relevance",
                 relevance={"seeds": [str(seeds)], "active_learning": 0})
    cfg.relevance.threshold.value = 0.1
    res, ledger = curate(records, cfg)
    assert_accounts_for_everything(records, res, ledger)
    kept = {r["id"]: r for r in res.kept}
    assert "off" not in kept and "de" not in kept and "dup" not in kept
    assert "gen" in kept, "general records are scored but never dropped for relevance"
    assert kept["syn"]["synthetic"] is True and kept["0"]["synthetic"] is True and kept["1"]["synthetic"] is False
    assert "<EMAIL>" in kept["syn"]["messages"][1]["content"]
    assert res.synthetic == {"in": 5, "kept": sum(r["synthetic"] for r in res.kept)}
    dropped_syn = [d for d in ledger.dropped_records if d["record"]["synthetic"]]
    assert [d["id"] for d in dropped_syn] == ["dup"]
    for r in res.kept:
        assert r["cluster"] and set(r["scores"]) == {"quality", "words", "language", "relevance"}
    assert [s.stage for s in res.stages] == cfg.stages


@pytest.mark.parametrize("override,needle", [
    ({"stages": ["normalize", "dedup"]}, "unknown stage 'dedup'"),
    ({"stages": ["pii", "pii"]}, "lists pii more than once"),
])
def test_bad_stage_lists_fail_with_one_line(override, needle):
    cfg = CurationConfig(enabled=True, **override)
    with pytest.raises(ConfigError, match=needle):
        cfg.check()


def test_relevance_without_seeds_or_dev_is_a_config_error():
    cfg = CurationConfig(enabled=True, stages=["relevance"])
    with pytest.raises(ConfigError, match="curation.relevance.seeds"):
        cfg.check()
    cfg.relevance.seeds = ["x.jsonl"]
    cfg.relevance.threshold.mode = "calibrated"
    with pytest.raises(ConfigError, match="curation.relevance.dev"):
        cfg.check()


def test_empty_input_is_a_data_error():
    with pytest.raises(DataError, match="no records to curate"):
        run([], config("normalize"), Ledger())


def test_multiprocess_map_gives_the_same_result(monkeypatch):
    """num_proc > 1 shards the per-record stages across processes (datasets.map); results must not change."""
    from ftx.data.curate import table

    records = [rec(i, t + f" Mail me at user{i}@mail.com.") for i, t in enumerate(HTTP * 4)]
    records += [rec("de", "Der Server antwortet mit einem Statuscode, wenn die Ressource nicht gefunden wurde.")]
    cfg = config("normalize", "quality", "language", "pii")
    one, led1 = curate(records, cfg)
    monkeypatch.setattr(table, "PARALLEL_MIN_ROWS", 4)
    cfg.num_proc = 2
    two, led2 = curate(records, cfg)
    assert one.kept == two.kept and led1.summary() == led2.summary()

"""Generation metrics on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from ftx.eval.metrics import aggregate, bleu, contains, exact_match, normalize, rouge_l, token_f1


def test_normalize_lowercases_strips_punctuation_articles_and_spaces():
    assert normalize("  The  Cat,  sat!  ") == "cat sat"
    assert normalize("An apple; a pear.") == "apple pear"
    assert normalize("ＨＴＴＰ/1.1") == "http 1 1"  # NFKC folds full-width letters
    assert normalize("Größe") == "größe"


@pytest.mark.parametrize("prediction,answers,expected", [
    ("Paris", ["paris"], 1.0),
    ("The Paris.", ["Paris"], 1.0),
    ("Paris, France", ["Paris"], 0.0),
    ("Lyon", ["Paris", "City of Paris", "lyon"], 1.0),
    ("", ["Paris"], 0.0),
])
def test_exact_match_against_any_accepted_answer(prediction, answers, expected):
    assert exact_match(prediction, answers) == expected


@pytest.mark.parametrize("prediction,answers,expected", [
    ("It returns 404 Not Found.", ["not found"], 1.0),
    ("The foundation", ["found"], 0.0),  # whole tokens only
    ("use port 443", ["80", "443"], 1.0),
    ("nothing here", [""], 0.0),  # an empty answer never counts as contained
])
def test_contains_is_a_whole_token_phrase_match(prediction, answers, expected):
    assert contains(prediction, answers) == expected


def test_token_f1_known_values():
    # pred tokens [cat, sat, on, mat] vs ref [cat, on, mat]: P=3/4, R=1, F1=6/7
    assert token_f1("the cat sat on the mat", ["cat on mat"]) == pytest.approx(6 / 7)
    # repeated tokens count with multiplicity: [x, x, y] vs [x, y, y] → common 2, P=R=2/3
    assert token_f1("x x y", ["x y y"]) == pytest.approx(2 / 3)
    assert token_f1("red", ["blue"]) == 0.0
    # the best accepted answer wins
    assert token_f1("cat on mat", ["dog", "cat on mat"]) == 1.0
    assert token_f1("", [""]) == 1.0 and token_f1("", ["x"]) == 0.0


def test_rouge_l_known_values():
    # LCS of [w x y z] and [w y z q] is [w y z]: P=R=3/4 → F=0.75
    assert rouge_l("w x y z", ["w y z q"]) == pytest.approx(0.75)
    # LCS 2 of pred 2 / ref 4: P=1, R=1/2 → F=2/3
    assert rouge_l("w z", ["w x y z"]) == pytest.approx(2 / 3)
    assert rouge_l("w x y z", ["nothing alike", "w x y z"]) == 1.0
    assert rouge_l("abc", ["xyz"]) == 0.0


def test_rouge_l_keeps_non_ascii_words():
    """rouge-score's default tokenizer drops non-ASCII letters (so 'größe' vs 'grüße' would match)."""
    assert rouge_l("größe", ["größe"]) == 1.0
    assert rouge_l("größe", ["grüße"]) == 0.0


def test_bleu_known_values():
    assert bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(100.0)
    assert bleu(["alpha beta"], [["gamma delta"]]) == pytest.approx(0.0)
    # "a b c d e" vs "a b c d f": n-gram precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty
    expected = 100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu(["a b c d e"], [["a b c d f"]]) == pytest.approx(expected, rel=1e-6)


def test_bleu_allows_a_different_number_of_references_per_example():
    score = bleu(["one two three four", "five six seven eight"],
                 [["x y z w", "one two three four"], ["five six seven eight"]])
    assert score == pytest.approx(100.0)


def test_aggregate_means_and_per_example_scores():
    summary, per = aggregate(["Paris", "the cat sat on the mat"], [["paris"], ["cat on mat"]])
    assert summary["n"] == 2
    assert summary["exact_match"] == pytest.approx(0.5)
    assert summary["token_f1"] == pytest.approx((1 + 6 / 7) / 2)
    assert per[0]["exact_match"] == 1.0 and per[1]["contains"] == 0.0
    assert 0.0 < summary["bleu"] <= 100.0
    empty, none = aggregate([], [])
    assert empty["n"] == 0 and empty["exact_match"] is None and none == []

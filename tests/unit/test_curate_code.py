"""Code in technical text is exempt from every quality check: detection of code lines and its effect."""

from __future__ import annotations

from ftx.data.curate import quality
from ftx.data.curate.table import code_lines, prose_lines
from ftx.spec.curation import QualityConfig

from tests.unit.test_curate import config, curate, drops, rec


def flags(text: str) -> list[tuple[int, str]]:
    return [(int(c), l) for l, c in zip(text.split("\n"), code_lines(text)) if l.strip()]


def test_code_lines_finds_sessions_literal_blocks_options_and_statements():
    text = "\n".join([
        "List the files first:",
        "",
        "$ ls -l /tmp",
        "total 0",
        "",
        "Then call it from Python::",
        "",
        "    x = 1",
        "    print(x)",
        "",
        ">>> len('abc')",
        "3",
        "",
        "--ignore-rev <rev>",
        "    Ignore changes made by the revision when assigning blame.",
        "",
        "    A second paragraph of the same option.",
        "#include <stdio.h>",
        "int open(const char *pathname, int flags);",
        "| code | meaning |",
        "Arch/ABI      arg1  arg2  arg3  arg4",
        "A closing sentence (with parentheses) is prose.",
    ])
    got = dict((l, c) for c, l in flags(text))
    assert got["List the files first:"] == 0 and got["A closing sentence (with parentheses) is prose."] == 0
    for line in ("$ ls -l /tmp", "total 0", "    x = 1", "    print(x)", ">>> len('abc')", "3", "--ignore-rev <rev>",
                 "    Ignore changes made by the revision when assigning blame.",
                 "    A second paragraph of the same option.", "#include <stdio.h>",
                 "int open(const char *pathname, int flags);", "| code | meaning |", "Arch/ABI      arg1  arg2  arg3  arg4"):
        assert got[line] == 1, line


def test_indented_prose_stays_prose_and_markdown_headers_are_not_code():
    text = ("# Caching\n\nThe server said:\n\n    Responses are fresh for an hour, then they must be\n"
            "    revalidated with the origin before they are used again.\n")
    assert [c for c, _ in flags(text)] == [0, 0, 0, 0]
    assert "    Responses are fresh for an hour, then they must be" in prose_lines(text)


def _answer(code: str) -> str:
    return ("To read a file line by line in Python, open it in a with block and iterate over the file object; "
            "each iteration yields one line including its newline, and the file is closed when the block "
            "ends even if an exception is raised.\n\n" + code + "\n\nThe same pattern works for binary files "
            "opened with mode rb, where each item is a bytes object instead of a string.")


CODE = "\n".join(["    with open('a.txt') as f:", "        for line in f:", "            print(line)",
                  "    with open('b.txt') as f:", "        for line in f:", "            print(line)",
                  "    with open('c.txt') as f:", "        for line in f:", "            print(line)"])
SESSION = "\n".join([">>> import os", ">>> os.sep", "'/'", ">>> os.sep", "'/'", ">>> os.sep", "'/'",
                     ">>> os.getcwd()", "'/home/user/project/src/module/package/sub/dir'"])


def test_repeated_code_does_not_fail_the_prose_checks_but_repeated_prose_does():
    cfg = QualityConfig()
    for code in (CODE, SESSION):
        m = quality.measure(_answer(code), cfg)
        assert quality.verdict(m, cfg) is None, (code, m)
        off = QualityConfig(exempt_code_blocks=False)  # the same record with the exemption off fails
        assert quality.verdict(quality.measure(_answer(code), off), off) is not None
    prose = _answer(" ".join(["Open the file, iterate over the lines, print every line."] * 6))
    assert quality.verdict(quality.measure(prose, cfg), cfg)[0] == "repeated_ngrams"


def test_a_phrase_repeated_twice_in_a_short_text_is_not_spam():
    text = ("wait(): on success, returns the process ID of the terminated child; on failure, -1 is returned. "
            "waitpid(): on success, returns the process ID of the child whose state has changed; if WNOHANG "
            "was specified and no child has changed state, then 0 is returned. On failure, -1 is returned. "
            "On failure, each of these calls sets errno to indicate the error.")
    cfg = QualityConfig()
    assert quality.verdict(quality.measure(text, cfg), cfg) is None
    gopher = QualityConfig(ngram_min_count=2)  # Gopher's own rule drops it
    assert quality.verdict(quality.measure(text, gopher), gopher)[0] == "repeated_ngrams"


def test_a_single_line_is_not_a_share_of_lines():
    quote = ("It's simply unbelievable how much energy and creativity people have\ninvested into creating "
             "contradictory, bogus and stupid licenses...\n\t\t-- Sven Rudolph")
    res, ledger = curate([rec("q", quote), rec("e", "\n".join(["Wait for it..."] * 2 + ["It came at last."] * 2))],
                         config("quality"))
    assert "q" not in drops(ledger, "quality")
    assert drops(ledger, "quality")["e"]["reason"] in ("ellipsis_lines", "repeated_lines", "symbol_word_ratio")

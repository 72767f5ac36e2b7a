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


def test_man_page_layouts_are_recognised_as_definition_lists_comments_and_synopses():
    text = "\n".join([
        "The fields are:",
        "",
        "ru_ixrss (unmaintained)",
        "       This field is currently unused on Linux.",
        "",
        "objectmode",
        "    The mode of the file which is recorded in the index.",
        "",
        "EINVAL CLONE_NEWPID was specified in flags, but the kernel was not",
        "       configured with the CONFIG_PID_NS option.",
        "",
        "/* Other code omitted */",
        "    fclose(fp);",
        "gencmn [ -h, -?, --help ] [ -v, --verbose ] [ -c, --copyright | -C,",
        "A closing sentence is prose.",
        "Note that:",
        "    indented prose after a sentence stays prose.",
    ])
    got = dict((l, c) for c, l in flags(text))
    for line in ("The fields are:", "A closing sentence is prose.", "Note that:",
                 "    indented prose after a sentence stays prose."):
        assert got[line] == 0, line
    for line in ("ru_ixrss (unmaintained)", "       This field is currently unused on Linux.",
                 "    The mode of the file which is recorded in the index.",
                 "EINVAL CLONE_NEWPID was specified in flags, but the kernel was not",
                 "       configured with the CONFIG_PID_NS option.", "/* Other code omitted */",
                 "gencmn [ -h, -?, --help ] [ -v, --verbose ] [ -c, --copyright | -C,"):
        assert got[line] == 1, line


def test_line_shares_count_code_lines_and_grammar_ellipses_are_not_truncation():
    cfg = QualityConfig()
    examples = "\n".join(["•   Add a remote and fetch it", "", "        $ git remote add staging git://example.org/x.git",
                          "        $ git fetch staging", "", "•   Imitate a clone tracking one branch", "",
                          "        $ git init", "        $ git remote add -f -t master origin git://example.org/y.git",
                          "        $ git merge origin"])
    assert quality.measure(examples, cfg)["bullet_line_frac"] < cfg.max_bullet_line_frac
    synopsis = "\n".join(["git remote prune [-n | --dry-run] <name>...", "git remote show [-n] <name>...",
                          "git remote update [(<group> | <remote>)...]", "Manage the set of tracked repositories."])
    assert quality.measure(synopsis, cfg)["ellipsis_line_frac"] == 0
    trailing = "\n".join(["Wait for it...", "It came at last...", "Then it went away...", "Nobody noticed."])
    assert quality.measure(trailing, cfg)["ellipsis_line_frac"] > cfg.max_ellipsis_line_frac


def test_boilerplate_reads_prose_only_so_command_synopses_are_not_menus():
    synopsis = ("git cat-file <type> <object>\ngit cat-file (-e | -p) <object>\n"
                "git cat-file (-t | -s) [--allow-unknown-type] <object>\n"
                "git cat-file (--batch | --batch-check | --batch-command) [--batch-all-objects]")
    res, ledger = curate([rec("syn", synopsis), rec("nav", "Home | About | Contact | Blog\nSkip to content\n"
                                                           "Privacy Policy")], config("quality"))
    d = drops(ledger, "quality")
    assert "syn" not in d and d["nav"]["reason"] == "boilerplate"


def test_a_term_repeated_three_times_is_not_a_dominant_ngram_but_keyword_stuffing_is():
    cfg = QualityConfig()
    prose = ("A process group is a set of processes. When a process group becomes orphaned, each stopped member "
             "receives SIGHUP followed by SIGCONT, so that no member of the group stays stopped forever. The "
             "shell creates a process group for each pipeline it starts and makes it the foreground job of the "
             "terminal, so that signals typed at the keyboard reach every command of the pipeline at once.")
    assert quality.verdict(quality.measure(prose, cfg), cfg) is None
    stuffed = " ".join(["cheap hosting"] * 20 + ["for", "every", "site", "and", "every", "budget", "you", "have"] * 5)
    assert quality.verdict(quality.measure(stuffed, cfg), cfg)[0] == "repeated_ngrams"

"""Build real, labelled curation corpora from Debian packages (nothing downloaded beyond apt-get).

    python benchmarks/corpora.py                 # all corpora into ~/.cache/ftx/corpora/
    python benchmarks/corpora.py --only syscalls --out /tmp/corpora
    python benchmarks/corpora.py --no-install    # use what is installed (no apt-get)

Corpora (each: one technical domain, hard negatives from neighbouring technical topics, general prose):

  syscalls    man-page sections of Linux system calls (man2) against the C library (man3),
              overviews (man7), commands (man1/man8) and fortunes (general prose)
  git         man-page sections of git (git*.1) against other developer commands' man pages
              (compilers, build tools, dpkg/apt, ssh, coreutils...) and fortunes
  python-pkg  Debian package descriptions of Section `python` against neighbouring programming
              sections (perl, ruby, javascript, rust, golang, haskell, devel, libdevel) and
              general sections (games, sound, graphics, x11, text, misc, fonts)

Man pages are rendered with `man -l` (80 columns, no hyphenation/justification, `col -bx`); the
7-column body indent is removed so code and option blocks keep their own relative indentation.
Each record is one man-page section or a run of its paragraphs (40–250 words).

Written per corpus under <out>/<name>/:

  corpus.jsonl      {"id", "text"} — what a user would curate (includes planted near-duplicates)
  seeds.jsonl       25 in-domain records (not in the corpus)
  dev.jsonl         400 labelled corpus records {"id", "text", "label"} (stratified by kind)
  test_labels.jsonl {"id", "label", "kind"} for every other corpus record (held out)
  near_dups.jsonl   {"a", "b", "edit"}: planted realistic edits (re-wrapped lines, changed versions
                    or dates, appended sentence, case/punctuation changes) of a corpus record
  meta.json         counts, sources, the seed

Deterministic for a given set of installed packages and apt lists (sorted inputs, seeded RNG).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

APT_PACKAGES = ["man-db", "groff-base", "bsdextrautils", "manpages", "manpages-dev", "fortunes", "fortunes-min", "git"]
DEFAULT_OUT = Path("~/.cache/ftx/corpora").expanduser()
SEED = 16
N_SEEDS, N_DEV = 25, 400
MIN_WORDS, MAX_WORDS = 40, 250
FORTUNE_SKIP = {"ascii-art", "art", "miscellaneous"}


def ensure_packages(install: bool) -> None:
    missing = [p for p in APT_PACKAGES
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                 text=True).stdout.strip() != "install ok installed"]
    if not missing:
        return
    if not install:
        sys.exit(f"corpora: missing Debian packages {' '.join(missing)} (run without --no-install, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


# ---------------------------------------------------------------- man pages

def render(path: Path, cache: Path) -> str:
    key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    hit = cache / f"{key}.txt"
    if hit.is_file():
        return hit.read_text(encoding="utf-8")
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "", "GROFF_NO_SGR": "1", "LC_ALL": "C.UTF-8"}
    try:
        raw = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-l", str(path)],
                             capture_output=True, env=env, timeout=60).stdout
        text = subprocess.run(["col", "-bx"], input=raw, capture_output=True, timeout=60).stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        text = ""
    hit.write_text(text, encoding="utf-8")
    return text


HEAD = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]+$")
SKIP_SECTIONS = {"NAME", "SEE ALSO", "COLOPHON", "AUTHOR", "AUTHORS", "COPYRIGHT", "REPORTING BUGS", "LIBRARY",
                 "STANDARDS", "HISTORY", "VERSIONS", "GIT", "TRANSLATION", "AVAILABILITY", "LICENSE", "BUGS"}


def _dedent(lines: list[str], n: int = 7) -> list[str]:
    return [l[n:] if l[:n].strip() == "" else l.lstrip() for l in lines]


def man_records(text: str) -> list[str]:
    """One record per section, or runs of its paragraphs of MIN_WORDS..MAX_WORDS words."""
    lines = text.split("\n")
    if len(lines) < 4:
        return []
    lines = lines[1:-2]  # the page header and footer lines
    sections, name, body = [], None, []
    for line in lines:
        if HEAD.match(line.rstrip()):
            if name:
                sections.append((name, body))
            name, body = line.strip(), []
        elif name:
            body.append(line.rstrip())
    if name:
        sections.append((name, body))
    out = []
    for name, body in sections:
        if name in SKIP_SECTIONS:
            continue
        body = _dedent(body)
        paras, cur = [], []
        for l in body + [""]:
            if l.strip():
                cur.append(l)
            elif cur:
                paras.append("\n".join(cur))
                cur = []
        chunk, words = [], 0
        for p in paras:
            w = len(p.split())
            if chunk and words + w > MAX_WORDS:
                if words >= MIN_WORDS:
                    out.append("\n\n".join(chunk))
                chunk, words = [], 0
            chunk.append(p)
            words += w
        if words >= MIN_WORDS:
            out.append("\n\n".join(chunk))
    return [r for r in out if len(r.split()) <= 2 * MAX_WORDS]


def man_pages(section: str, pattern: str = "*") -> list[Path]:
    root = Path(f"/usr/share/man/man{section}")
    return sorted(p for p in root.glob(pattern) if p.is_file() and not p.is_symlink())


def records_from_pages(pages: list[Path], cache: Path, per_page: int, rng: random.Random) -> list[tuple[str, str]]:
    """(page name, record text), at most `per_page` records per page (spread over the corpus)."""
    with ThreadPoolExecutor(max_workers=2) as ex:
        rendered = list(ex.map(lambda p: render(p, cache), pages))
    out = []
    for p, text in zip(pages, rendered):
        recs = man_records(text)
        if len(recs) > per_page:
            recs = rng.sample(recs, per_page)
        out += [(p.name.split(".")[0], r) for r in recs]
    return out


# ---------------------------------------------------------------- fortunes, package descriptions

def fortunes(min_words: int = 25) -> list[str]:
    root = Path("/usr/share/games/fortunes")
    out = []
    for f in sorted(root.iterdir()):
        if f.suffix or f.is_dir() or f.name in FORTUNE_SKIP:
            continue
        for item in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            item = item.strip()
            if min_words <= len(item.split()) <= MAX_WORDS:
                out.append(item)
    return out


def _stanzas(text: str):
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.split("\n"):
            if line.startswith(" ") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, v = line.partition(":")
                fields[key] = v.strip()
        yield fields


def translations() -> dict:
    """Description-md5 -> English long description, from apt's Translation-en lists (apt-get fetches them
    with Acquire::Languages=en; Debian's docker images turn them off)."""
    lists = Path("/var/lib/apt/lists")
    files = sorted(lists.glob("*_i18n_Translation-en*"))
    if not files:
        subprocess.run(["apt-get", "update", "-qq", "-o", "Acquire::Languages=en"], check=True)
        files = sorted(lists.glob("*_i18n_Translation-en*"))
    out = {}
    for f in files:
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(f)], capture_output=True, text=True,
                              check=True).stdout
        for fields in _stanzas(text):
            if "Description-md5" in fields and "Description-en" in fields:
                out[fields["Description-md5"]] = fields["Description-en"]
    return out


def descriptions() -> list[dict]:
    """{package, section, text, body} from apt-cache dumpavail + Translation-en: summary line, blank line, the
    long description de-formatted (' .' lines become blank lines)."""
    long_desc = translations()
    dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    out, seen = [], set()
    for fields in _stanzas(dump):
        pkg, section = fields.get("Package"), fields.get("Section", "").split("/")[-1]
        desc = long_desc.get(fields.get("Description-md5", ""), "")
        if not pkg or pkg in seen or not desc:
            continue
        seen.add(pkg)
        summary, _, long = desc.partition("\n")
        body = "\n".join(("" if l.strip() == "." else l[1:]) for l in long.split("\n")).strip()
        text = (summary.strip() + "\n\n" + body).strip()
        if MIN_WORDS // 2 <= len(text.split()) <= 2 * MAX_WORDS:
            out.append({"package": pkg, "section": section, "text": text, "body": body})
    return out


# ---------------------------------------------------------------- planted near-duplicates

VERSION = re.compile(r"\b(\d+)\.(\d+)(\.\d+)?\b")
YEAR = re.compile(r"\b(19[89]\d|20[0-2]\d)\b")


def near_dup(text: str, rng: random.Random) -> tuple[str, str]:
    """A realistic edit of `text`: what a second copy of the same document tends to differ by."""
    kind = rng.choice(["rewrap", "version", "append", "case_punct", "rewrap+append"])
    t = text
    if "rewrap" in kind:
        paras = t.split("\n\n")
        width = rng.choice([60, 72, 100])
        t = "\n\n".join(p if p.startswith((" ", "\t")) or "\n " in p else textwrap.fill(" ".join(p.split()), width)
                        for p in paras)
    if kind == "version":
        if VERSION.search(t) or YEAR.search(t):
            t = VERSION.sub(lambda m: f"{m.group(1)}.{int(m.group(2)) + 1}{m.group(3) or ''}", t)
            t = YEAR.sub(lambda m: str(int(m.group(1)) + 1), t)
        else:
            t = t + f"\n\nUpdated for release {rng.randint(2, 9)}.{rng.randint(0, 20)}."
    if "append" in kind:
        t = t + rng.choice(["\n\nSee the upstream documentation for details.",
                            " This behaviour may change in a future release.",
                            "\n\nThis page is part of the distribution's documentation set."])
    if kind == "case_punct":
        words = t.split(" ")
        for i in rng.sample(range(len(words)), max(1, len(words) // 25)):
            words[i] = words[i].capitalize() if words[i].islower() else words[i].lower()
        t = " ".join(words).replace(";", ",").replace("  ", " ")
    return t, kind


# ---------------------------------------------------------------- assembly

def assemble(name: str, domain: list[str], hard: list[str], general: list[str], out: Path, seed: int,
             sources: dict, dup_key=None) -> dict:
    """`dup_key(text)`: texts sharing a key (and differing) are natural near-duplicates."""
    rng = random.Random(seed)
    pools = {"domain": sorted(set(domain)), "hard": sorted(set(hard)), "general": sorted(set(general))}
    dupes = set(pools["domain"]) & (set(pools["hard"]) | set(pools["general"]))  # never let a text carry two labels
    pools = {k: [t for t in v if t not in dupes or k == "domain"] for k, v in pools.items()}
    for v in pools.values():
        rng.shuffle(v)
    seeds = pools["domain"][:N_SEEDS]
    rows = [(t, 1, "domain") for t in pools["domain"][N_SEEDS:]] + \
           [(t, 0, "hard") for t in pools["hard"]] + [(t, 0, "general") for t in pools["general"]]
    rng.shuffle(rows)
    records = [{"id": f"{name}-{i:05d}", "text": t, "label": y, "kind": k} for i, (t, y, k) in enumerate(rows)]
    pairs = []
    if dup_key is not None:
        groups = {}
        for r in records:
            groups.setdefault(dup_key(r["text"]), []).append(r["id"])
        for ids in groups.values():
            pairs += [{"a": ids[0], "b": b, "edit": "natural"} for b in ids[1:]]
    # planted near-duplicates: 3% of records get an edited second copy (same label)
    for r in rng.sample(records, len(records) * 3 // 100):
        t, edit = near_dup(r["text"], rng)
        if t != r["text"]:
            new = {"id": f"{r['id']}-nd", "text": t, "label": r["label"], "kind": r["kind"]}
            pairs.append({"a": r["id"], "b": new["id"], "edit": edit})
            records.insert(rng.randrange(len(records) + 1), new)
    # dev: 400 records stratified by kind (in proportion), excluding planted copies
    by_kind = {}
    for r in records:
        if not r["id"].endswith("-nd"):
            by_kind.setdefault(r["kind"], []).append(r)
    total = sum(len(v) for v in by_kind.values())
    dev, kinds = [], sorted(by_kind)
    for j, k in enumerate(kinds):
        n = N_DEV - len(dev) if j == len(kinds) - 1 else round(N_DEV * len(by_kind[k]) / total)
        dev += rng.sample(by_kind[k], n)
    dev_ids = {r["id"] for r in dev}
    d = out / name
    d.mkdir(parents=True, exist_ok=True)

    def write(fname, rows_):
        with open(d / fname, "w", encoding="utf-8") as f:
            for row in rows_:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    write("corpus.jsonl", ({"id": r["id"], "text": r["text"]} for r in records))
    write("seeds.jsonl", ({"id": f"{name}-seed-{i:02d}", "text": t} for i, t in enumerate(seeds)))
    write("dev.jsonl", ({"id": r["id"], "text": r["text"], "label": r["label"]} for r in sorted(dev, key=lambda r: r["id"])))
    write("test_labels.jsonl", ({"id": r["id"], "label": r["label"], "kind": r["kind"]}
                                for r in records if r["id"] not in dev_ids))
    write("near_dups.jsonl", pairs)
    meta = {"name": name, "seed": seed, "records": len(records), "seeds": len(seeds), "dev": len(dev),
            "dev_positive": sum(r["label"] for r in dev), "near_dup_pairs": len(pairs),
            "kinds": {k: sum(r["kind"] == k for r in records) for k in ("domain", "hard", "general")},
            "sources": sources}
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def build_syscalls(out: Path, cache: Path, rng: random.Random, prose: list[str]) -> dict:
    dom = [t for _, t in records_from_pages(man_pages("2"), cache, 8, rng)]
    hard = [t for _, t in records_from_pages(rng.sample(man_pages("3"), 500), cache, 4, rng)]
    hard += [t for _, t in records_from_pages(man_pages("7"), cache, 4, rng)]
    hard += [t for _, t in records_from_pages(rng.sample(man_pages("8"), 200) + rng.sample(man_pages("1"), 400),
                                              cache, 3, rng)]
    general = rng.sample(prose, min(len(prose), 2000))
    return assemble("syscalls", dom, hard, general, out, SEED,
                    {"domain": "man2", "hard": "man3 (500 pages), man7, man8 (200), man1 (400)", "general": "fortunes"})


GIT_NEIGHBOURS = re.compile(r"^(gcc|g\+\+|cpp|make|cmake|ld|as|gdb|objdump|readelf|strip|ar|nm|patch|diff|"
                            r"diff3|sdiff|cmp|dpkg|apt|ssh|scp|sftp|rsync|tar|gzip|zstd|xz|bzip2|grep|sed|awk|"
                            r"find|xargs|ls|cp|mv|rm|ln|chmod|chown|install|python3|perl|pod|openssl|curl|wget|"
                            r"quilt|debuild|dch|svn|hg|bzr|cvs|rcs|ci|co|meson|ninja|autoconf|automake|libtool|lintian|debhelper|dh_|"
                            r"pkg-config|clang|lld|llvm|ctags|less|man|bash|sh|dash)")


def build_git(out: Path, cache: Path, rng: random.Random, prose: list[str]) -> dict:
    gitpages = [p for p in man_pages("1", "git*") if not p.name.startswith(("gitk", "github"))]
    dom = [t for _, t in records_from_pages(gitpages, cache, 10, rng)]
    neighbours = [p for p in man_pages("1") if GIT_NEIGHBOURS.match(p.name) and not p.name.startswith("git")]
    hard = [t for _, t in records_from_pages(rng.sample(neighbours, min(len(neighbours), 700)), cache, 8, rng)]
    general = rng.sample(prose, min(len(prose), 2000))
    return assemble("git", dom, hard, general, out, SEED + 1,
                    {"domain": f"git*.1 ({len(gitpages)} pages)", "hard": "developer tools' man1 pages",
                     "general": "fortunes"})


HARD_SECTIONS = {"perl", "ruby", "javascript", "rust", "golang", "haskell", "devel", "libdevel", "java", "php"}
GENERAL_SECTIONS = {"games", "sound", "graphics", "x11", "text", "misc", "fonts", "gnome", "kde", "editors",
                    "video", "hamradio", "electronics", "mail", "web", "net", "news"}


def build_python_pkg(out: Path, rng: random.Random) -> dict:
    descs = descriptions()
    dom = [d["text"] for d in descs if d["section"] == "python"]
    hard = [d["text"] for d in descs if d["section"] in HARD_SECTIONS]
    general = [d["text"] for d in descs if d["section"] in GENERAL_SECTIONS]
    dom, hard, general = (rng.sample(sorted(x), min(len(x), n)) for x, n in ((dom, 1600), (hard, 3000), (general, 2500)))
    body = {d["text"]: d["body"] for d in descs}
    return assemble("python-pkg", dom, hard, general, out, SEED + 2,
                    {"domain": "Section: python", "hard": ", ".join(sorted(HARD_SECTIONS)),
                     "general": ", ".join(sorted(GENERAL_SECTIONS))},
                    dup_key=lambda t: body.get(t, t))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", choices=["syscalls", "git", "python-pkg"])
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing packages")
    args = ap.parse_args(argv)
    ensure_packages(not args.no_install)
    cache = args.out / ".render"
    cache.mkdir(parents=True, exist_ok=True)
    only = args.only or ["syscalls", "git", "python-pkg"]
    prose = fortunes() if {"syscalls", "git"} & set(only) else []
    for name in only:
        rng = random.Random(f"{SEED}-{name}")
        if name == "syscalls":
            meta = build_syscalls(args.out, cache, rng, prose)
        elif name == "git":
            meta = build_git(args.out, cache, rng, prose)
        else:
            meta = build_python_pkg(args.out, rng)
        print(f"{name}: {meta['records']} records {meta['kinds']}, dev {meta['dev']} "
              f"({meta['dev_positive']} relevant), {meta['near_dup_pairs']} near-dup pairs → {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real QA sets nobody here wrote, built from this machine's Debian package metadata (issue 21, item 4).

    python benchmarks/qa_sets.py --out qa/                      # every set, 230 train + 70 held-out each
    python benchmarks/qa_sets.py --out qa/ --sets commands --train 230 --heldout 70 --seed 0

Sets (each a folder with train.jsonl, heldout.jsonl and manifest.json; records are
{"id", "prompt", "response", "answers"}, so ftx's evaluation accepts every listed answer):

  commands   short answers: "Which Debian package provides the command `xzcat`?" → xz-utils.
             From /var/lib/dpkg/info/*.list (the files each installed package owns): executables in
             /usr/bin, /usr/sbin, /bin, /sbin owned by exactly one package, whose name differs from the
             package's (otherwise the question answers itself).
  sections   short answers: "In which Debian archive section is the package `libssl3` filed?" → libs.
             From /var/lib/dpkg/status (Package, Section).
  synopsis   long answers: "What is the Debian package `gzip`?" → its one-line Description synopsis
             (token F1 / ROUGE-L territory: the auto primary metric picks val_token_f1 for these).
  mimetypes  short answers the base model partly knows: "What is the MIME type of files with the
             extension `.mp3`?" → audio/mpeg. From /etc/mime.types (package media-types), standard
             trees only (no vnd./x-/prs. subtypes); keyed by type, so a type's extensions stay on one side.
  manpages   short answers: "Which command's manual page describes it as: "list directory contents"?" → ls.
             From the NAME line of every installed section-1 manual page (/usr/share/man/man1, at most 4
             per package, pages whose description names the command left out).
  ports      short answers the base model partly knows: "Which port number is assigned to the network
             service `ssh`?" → 22. From /etc/services (package netbase), one question per service name.
  descriptions  long answers of every length: "Describe the Debian package `gzip`." → its synopsis and
             extended Description (paragraphs and lists as the maintainer wrote them, 10 to 400 words;
             packages whose description is only the synopsis left out). The set with a real length
             spread: what packing and padding figures should be measured on (benchmarks/packing.py).

The first three are sets on which SmolLM2-135M scores near 0 before tuning (it cannot forget what it
does not know); mimetypes and ports are the ones where it starts with some knowledge to lose.

Reproducible: candidates are sorted, then sampled with --seed; manifest.json records the sha256 of
every metadata file read, the candidate count and the seed, so the same machine image gives the same
set byte for byte. Train and held-out questions never share a package (no answer leaks across).
Train on a set with ftx: train.jsonl as the domain source (ftx splits val/test off it by content hash)
and heldout.jsonl as a golden set (its records carry prompt + answers), so the 70 held-out questions of
other packages are answered and paired base vs tuned as well:

    ftx train data.sources.http.path=qa/commands/train.jsonl eval.golden.path=qa/commands/heldout.jsonl \
        eval.generation.max_examples=0 curation=none
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
from pathlib import Path

DPKG = Path("/var/lib/dpkg")
SETS = ("commands", "sections", "synopsis", "mimetypes", "ports", "manpages", "descriptions")
BIN_DIRS = ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_status(path: Path = DPKG / "status") -> list[dict]:
    """Installed packages' stanzas from dpkg's status file (RFC 822 style; continuation lines folded)."""
    out, cur, key = [], {}, None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, key = {}, None
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    if cur:
        out.append(cur)
    return [p for p in out if "install ok installed" in p.get("Status", "")]


def commands(info: Path = DPKG / "info") -> tuple[list[dict], list[Path]]:
    """(one record per command owned by exactly one package, the .list files read)."""
    owners: dict[str, set] = {}
    lists = sorted(info.glob("*.list"))
    for lst in lists:
        pkg = lst.name[: -len(".list")].split(":")[0]  # libfoo:amd64.list → libfoo
        for line in lst.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(BIN_DIRS) and line.count("/") == line.rstrip("/").count("/") and "/" in line:
                name = line.rsplit("/", 1)[1]
                if name and "/" not in name and line[: -len(name)] in BIN_DIRS:
                    owners.setdefault(name, set()).add(pkg)
    recs = []
    for cmd in sorted(owners):
        pkgs = owners[cmd]
        if len(pkgs) != 1:
            continue
        pkg = next(iter(pkgs))
        if cmd == pkg or cmd.startswith(pkg) and len(cmd) - len(pkg) <= 1:
            continue  # `gzip` from gzip: the question would answer itself
        recs.append({"key": pkg, "prompt": f"Which Debian package provides the command `{cmd}`?",
                     "response": pkg, "answers": [pkg]})
    return recs, lists


def sections(status: list[dict]) -> list[dict]:
    recs = []
    for p in sorted(status, key=lambda p: p["Package"]):
        section = p.get("Section", "")
        if not section:
            continue
        short = section.rsplit("/", 1)[-1]  # contrib/net → net
        recs.append({"key": p["Package"], "prompt": f"In which Debian archive section is the package "
                                                    f"`{p['Package']}` filed?",
                     "response": short, "answers": sorted({short, section})})
    return recs


def synopses(status: list[dict]) -> list[dict]:
    recs = []
    for p in sorted(status, key=lambda p: p["Package"]):
        synopsis = p.get("Description", "").split("\n", 1)[0].strip()
        if len(synopsis.split()) < 3:
            continue
        text = synopsis[0].upper() + synopsis[1:]
        recs.append({"key": p["Package"], "prompt": f"What is the Debian package `{p['Package']}`?",
                     "response": text + ("" if text.endswith(".") else "."), "answers": [synopsis]})
    return recs


def descriptions(status: list[dict], min_words: int = 10, max_words: int = 400) -> list[dict]:
    """Synopsis + extended description. dpkg folds continuation lines with "\n" (read_status); a lone "."
    is an empty line in Debian's format, and lines that started with two spaces are verbatim (here merged
    into their paragraph as the folding already stripped them)."""
    recs = []
    for p in sorted(status, key=lambda p: p["Package"]):
        synopsis, _, extended = p.get("Description", "").partition("\n")
        if not extended.strip() or not synopsis.strip():
            continue
        paras, cur = [], []
        for line in extended.split("\n"):
            if line == ".":
                if cur:
                    paras.append(" ".join(cur))
                cur = []
            elif line.startswith(("* ", "- ", "+ ", "o ")) and cur:
                paras.append(" ".join(cur))
                cur = [line]
            else:
                cur.append(line)
        if cur:
            paras.append(" ".join(cur))
        synopsis = synopsis.strip()
        head = synopsis[0].upper() + synopsis[1:] + ("" if synopsis.endswith(".") else ".")
        text = "\n\n".join([head] + paras)
        if not min_words <= len(text.split()) <= max_words:
            continue
        recs.append({"key": p["Package"], "prompt": f"Describe the Debian package `{p['Package']}`.",
                     "response": text, "answers": [text]})
    return recs


MAN1 = "/usr/share/man/man1/"


def _name_line(path: Path) -> str:
    """The NAME section's one line of a gzipped man page ("ls \\- list directory contents"), troff removed."""
    try:
        text = gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    except (OSError, EOFError):
        return ""
    m = re.search(r'^\.S[Hh]\s+"?NAME"?\s*\n(.*?)(?=^\.S[Hh])', text, re.M | re.S)
    if not m:
        return ""
    body = " ".join(line for line in m.group(1).splitlines() if not line.startswith(('.\\"', ".PD", ".IX")))
    body = re.sub(r"\\f[BIRP]|\\f\(..|\\&", "", body).replace("\\-", "-").replace("\\(em", "-")
    return " ".join(re.sub(r"^\.\w+\s*", "", body.strip()).split())


def manpages(info: Path = DPKG / "info", per_package: int = 4) -> tuple[list[dict], list[Path]]:
    """(one record per section-1 manual page, at most `per_package` per package, the .list files read)."""
    recs, lists = [], sorted(info.glob("*.list"))
    for lst in lists:
        pkg = lst.name[: -len(".list")].split(":")[0]
        pages = sorted(line for line in lst.read_text(encoding="utf-8", errors="replace").splitlines()
                       if line.startswith(MAN1) and line.endswith(".1.gz") and "/" not in line[len(MAN1):])
        taken = 0
        for page in pages:
            path = Path(page)
            if taken >= per_package or path.is_symlink() or not path.is_file():
                continue
            cmd, line = path.name[: -len(".1.gz")], _name_line(path)
            if " - " not in line:
                continue
            desc = line.split(" - ", 1)[1].strip().rstrip(".")
            if len(desc.split()) < 3 or cmd.lower() in desc.lower():
                continue  # too short to identify a command, or the description names it
            recs.append({"key": pkg, "prompt": f"Which command's manual page describes it as: \"{desc}\"?",
                         "response": cmd, "answers": [cmd]})
            taken += 1
    return recs, lists


def table_rows(path: Path):
    """The whitespace-separated fields of each line of a /etc table (mime.types, services) with at least two
    fields, comments removed."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            yield fields


def mimetypes(path: Path = Path("/etc/mime.types")) -> list[dict]:
    by_ext: dict[str, set] = {}
    for fields in table_rows(path):
        if "/" not in fields[0] or fields[0].split("/", 1)[1].startswith(("vnd.", "x-", "prs.")):
            continue
        for ext in fields[1:]:
            by_ext.setdefault(ext, set()).add(fields[0])
    recs = []
    for ext in sorted(by_ext):
        types = sorted(by_ext[ext])
        recs.append({"key": types[0], "prompt": f"What is the MIME type of files with the extension `.{ext}`?",
                     "response": types[0], "answers": types})
    return recs


def ports(path: Path = Path("/etc/services")) -> list[dict]:
    by_name: dict[str, set] = {}
    for fields in table_rows(path):
        if "/" not in fields[1]:
            continue
        port = fields[1].split("/", 1)[0]
        for name in fields[:1] + fields[2:]:  # the service and its aliases
            by_name.setdefault(name, set()).add(port)
    recs = []
    for name in sorted(by_name):
        if len(by_name[name]) != 1:
            continue  # an alias shared by services on different ports has no one answer
        port = next(iter(by_name[name]))
        recs.append({"key": port, "prompt": f"Which port number is assigned to the network service `{name}`?",
                     "response": port, "answers": [port]})
    return recs


def split(recs: list[dict], n_train: int, n_heldout: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Sample by package (a package's questions land on one side only), then cap each side."""
    keys = sorted({r["key"] for r in recs})
    random.Random(seed).shuffle(keys)
    by_key: dict[str, list[dict]] = {}
    for r in recs:
        by_key.setdefault(r["key"], []).append(r)
    train, held = [], []
    for k in keys:
        side = held if len(held) < n_heldout else train if len(train) < n_train else None
        if side is None:
            break
        side.extend(by_key[k])
    return train[:n_train], held[:n_heldout]


def write_set(out: Path, name: str, recs: list[dict], args, sources: dict) -> dict:
    train, held = split(recs, args.train, args.heldout, args.seed)
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for fname, rows in (("train.jsonl", train), ("heldout.jsonl", held)):
        with open(d / fname, "w", encoding="utf-8") as f:
            for i, r in enumerate(rows):
                f.write(json.dumps({"id": f"{name}-{fname[0]}{i:04d}", "prompt": r["prompt"], "response": r["response"],
                                    "answers": r["answers"]}, ensure_ascii=False) + "\n")
    manifest = {"set": name, "candidates": len(recs), "train": len(train), "heldout": len(held), "seed": args.seed,
                "sources": sources}
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--train", type=int, default=230)
    ap.add_argument("--heldout", type=int, default=70)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SETS))
    if unknown:
        print(f"qa_sets: unknown set(s) {', '.join(unknown)} ({', '.join(SETS)})", file=sys.stderr)
        return 2
    status_path = DPKG / "status"
    status = read_status(status_path) if {"sections", "synopsis", "descriptions"} & set(wanted) else []
    status_src = {str(status_path): sha256(status_path)} if status else {}
    for name in wanted:
        if name in ("commands", "manpages"):
            recs, lists = commands() if name == "commands" else manpages()
            src = {"dpkg_info_lists": len(lists), "lists_sha256": hashlib.sha256(
                b"".join(sha256(p).encode() for p in lists)).hexdigest()}
        elif name in ("mimetypes", "ports"):
            path = Path("/etc/mime.types" if name == "mimetypes" else "/etc/services")
            recs, src = (mimetypes(path) if name == "mimetypes" else ports(path)), {str(path): sha256(path)}
        else:
            recs = {"sections": sections, "synopsis": synopses, "descriptions": descriptions}[name](status)
            src = status_src
        m = write_set(args.out, name, recs, args, src)
        print(f"{name}: {m['train']} train + {m['heldout']} held-out of {m['candidates']} candidates → {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

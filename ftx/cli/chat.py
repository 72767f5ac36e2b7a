"""`ftx chat RUN_DIR [--base] [key=value …]`: a terminal REPL answering with a finished run's tuned model."""

from __future__ import annotations

import logging
import sys

from ftx.cli.args import command_parser, parse
from ftx.record.chat import Chat

HELP = "type a message; /reset starts a new conversation, /exit (or Ctrl-D) quits"


def parser():
    p = command_parser("chat", "ftx chat RUN_DIR [--base] [key=value …]",
                       "Chat with a finished run's tuned model (its chat format, system prompt and eval.generation "
                       "settings);\n--base answers with the base model beside it. Reads prompts from stdin when "
                       "it is not a terminal.")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a finished run directory")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="generation overrides, e.g. eval.generation.max_new_tokens=256")
    p.add_argument("--base", action="store_true", help="answer with the base model too, side by side")
    return p


def cmd_chat(args: list[str]) -> None:
    p = parser()
    ns = parse(p, args)
    if ns.run_dir is None:
        p.error("the following arguments are required: RUN_DIR")
    if "=" in ns.run_dir:
        p.error(f"RUN_DIR comes first, got {ns.run_dir!r}")
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s")
    chat = Chat(ns.run_dir, base=ns.base, overrides=tuple(ns.overrides))
    interactive = sys.stdin.isatty()
    g = chat.spec.eval.generation
    print(f"ftx chat: {ns.run_dir} ({'tuned and base' if ns.base else 'tuned'}; "
          f"{'greedy' if not g.do_sample else f'sampling T={g.temperature}'}, max_new_tokens {g.max_new_tokens}); {HELP}",
          flush=True)
    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            break
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            chat.reset()
            print("(new conversation)", flush=True)
            continue
        if not interactive:
            print(f"you> {line}")
        for side, (answer, seconds) in chat.ask(line).items():
            print(f"{side}> {answer}\n{'':>{len(side)}}  ({seconds:.1f}s)", flush=True)

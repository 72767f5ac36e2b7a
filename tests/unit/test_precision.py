"""ftx/precision.py: the single owner of bf16 detection."""

from __future__ import annotations

import re
from pathlib import Path

import ftx


def test_bf16_is_detected_in_ftx_precision_only():
    root = Path(ftx.__file__).parent
    probes = re.compile(r"avx512_?bf16|amx_(bf16|tile)|is_bf16_supported|/proc/cpuinfo")
    # quant.py only switches bitsandbytes' own AVX512-BF16 path off (module.support_avx512bf16_for_cpu)
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if p.name != "precision.py" and probes.search(p.read_text(encoding="utf-8").replace(
                       "support_avx512bf16_for_cpu", "")))
    assert found == [], f"bf16 detection outside ftx/precision.py: {found}"
    for plugin in (root.parent / "hydra_plugins").rglob("*.py"):
        assert not probes.search(plugin.read_text(encoding="utf-8")), plugin

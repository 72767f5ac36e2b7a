"""Cost accounting: fields present and consistent with each other."""

from __future__ import annotations

import pytest

from ftx.track import cost


def test_cost_fields_are_consistent():
    metrics = {"base": {"val_loss": 2.5}, "tuned": {"val_loss": 2.0}}
    c = cost.account(tokens=360_000, train_seconds=900.0, wall_seconds=1800.0, price_per_device_hour=2.0,
                     metrics=metrics, n_devices=2)
    assert c["device_hours"] == pytest.approx(1.0)                      # 1800 s × 2 devices
    assert c["estimated_cost"] == pytest.approx(c["device_hours"] * 2.0)
    assert c["tokens_per_s"] == pytest.approx(400.0)
    assert c["val_gain"] == pytest.approx(0.5)
    assert c["val_gain_per_device_hour"] == pytest.approx(0.5) and c["val_gain_per_mtok"] == pytest.approx(0.5 / 0.36)
    assert c["peak_memory_mb"] > 10  # this test process holds at least torch
    assert "train_seconds" not in c and "wall_seconds" not in c, "timings live once, at metrics.json's top level"


def test_no_price_no_base_eval():
    c = cost.account(tokens=0, train_seconds=0.0, wall_seconds=3.6, price_per_device_hour=0.0)
    assert c["estimated_cost"] == 0 and c["devices"] == 1 and c["device_hours"] == pytest.approx(0.001)
    assert "val_gain" not in c and c["tokens_per_s"] is None

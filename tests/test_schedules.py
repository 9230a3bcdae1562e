"""Learning-rate schedules against their closed-form definitions in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rawtf import schedules
from rawtf.errors import ConfigError

STEPS = np.arange(0, 120)


def values(schedule):
    return np.array([float(schedule(s)) for s in STEPS])


def test_constant_and_step_decay():
    np.testing.assert_allclose(values(schedules.Constant(0.01)), 0.01)
    expected = 0.1 * 0.5 ** np.floor(STEPS / 30)
    np.testing.assert_allclose(
        values(schedules.StepDecay(0.1, every=30, factor=0.5)), expected, rtol=1e-6
    )


def test_cosine_with_warmup():
    lr, total, warmup, final = 0.2, 100, 10, 0.01
    expected = []
    for s in STEPS:
        if s < warmup:
            expected.append(lr * (s + 1) / warmup)
        else:
            t = min((s - warmup) / (total - warmup), 1.0)
            expected.append(final + (lr - final) * (1 + math.cos(math.pi * t)) / 2)
    got = values(schedules.CosineDecay(lr, total, warmup=warmup, final_lr=final))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got[warmup] == pytest.approx(lr) and got[-1] == pytest.approx(final)


def test_one_cycle_rises_then_falls():
    total, peak_lr = 100, 0.3
    got = values(schedules.OneCycle(peak_lr, total, pct_start=0.3, div=25, final_div=1e4))
    assert got[0] == pytest.approx(peak_lr / 25, rel=1e-5)
    assert got[30] == pytest.approx(peak_lr, rel=1e-5) and got.argmax() == 30
    assert got[99] == pytest.approx(peak_lr / 25 / 1e4, rel=1e-3)
    assert np.all(np.diff(got[:31]) > 0) and np.all(np.diff(got[30:100]) < 0)
    t = (50 - 30) / (99 - 30)
    end = peak_lr / 25e4
    assert got[50] == pytest.approx(
        end + (peak_lr - end) * (1 + math.cos(math.pi * t)) / 2, rel=1e-5
    )


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="warmup"):
        schedules.CosineDecay(0.1, total=10, warmup=10)
    with pytest.raises(ConfigError, match="lr must be positive"):
        schedules.Constant(0.0)
    with pytest.raises(ConfigError, match="unknown schedule 'linear'"):
        schedules.get_schedule("linear", 0.1, 10)
    for name in schedules.SCHEDULES:
        assert float(schedules.get_schedule(name, 0.1, 50)(0)) > 0

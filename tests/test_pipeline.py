"""tf.data pipelines: epoch order, resuming mid-epoch, autotuning only when asked."""

from __future__ import annotations

import numpy as np
import pytest

from rawtf import data, pipeline


def test_train_dataset_follows_the_epoch_order_and_resumes(rng):
    x = rng.integers(0, 256, (50, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 50).astype(np.int32)
    order = data.epoch_order(50, seed=1, epoch=2)
    batches = list(pipeline.train_dataset(x, y, 16, seed=1, epoch=2))
    assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
    images = np.concatenate([b[0].numpy() for b in batches])
    np.testing.assert_allclose(images, x[order] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y[order])
    resumed = list(pipeline.train_dataset(x, y, 16, seed=1, epoch=2, start_step=2))
    np.testing.assert_array_equal(resumed[0][1].numpy(), batches[2][1].numpy())


@pytest.mark.parametrize("autotune", [False, True])
def test_pipelines_autotune_only_when_asked_and_give_the_same_batches(rng, monkeypatch, autotune):
    monkeypatch.setattr(pipeline, "AUTOTUNE", autotune)
    x = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 40).astype(np.int32)
    train = pipeline.train_dataset(x, y, 16, seed=3, epoch=1)
    evaluation = pipeline.eval_dataset(x, y, 16)
    # tf.data's default (None) autotunes; rawtf's fixed pipelines switch it off.
    expected = None if autotune else False
    assert [ds.options().autotune.enabled for ds in (train, evaluation)] == [expected] * 2
    order = data.epoch_order(40, seed=3, epoch=1)
    np.testing.assert_allclose(np.concatenate([b[0] for b in train]), x[order] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([b[0] for b in evaluation]), x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in evaluation]), y)


def test_one_dataset_runs_epoch_after_epoch_each_in_its_own_order(rng):
    x = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
    y = np.arange(40, dtype=np.int32) % 10
    run = list(pipeline.train_dataset(x, y, 16, seed=4, epoch=1, start_step=1, end_epoch=4))
    assert [len(b[1]) for b in run] == [16, 8] + [16, 16, 8] * 2
    orders = [data.epoch_order(40, seed=4, epoch=e) for e in (1, 2, 3)]
    want = np.concatenate([orders[0][16:], orders[1], orders[2]])
    np.testing.assert_allclose(np.concatenate([b[0] for b in run]), x[want] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in run]), y[want])
    dropped = list(pipeline.train_dataset(x, y, 16, 4, 1, end_epoch=3, drop_remainder=True))
    assert [len(b[1]) for b in dropped] == [16, 16, 16, 16]

"""Whole workflows, shared by the ``rawtf`` command, the examples and research code:
:func:`train_run` (settings -> data -> model -> fit -> test -> run folder), :func:`load_run`,
:func:`evaluate_run`, :func:`write_submission` and :func:`explore_data`.

A run folder holds everything one training run leaves behind::

    RUN_DIR/config.json     settings (TrainConfig), model config, training-set size, version
    RUN_DIR/model/          the trained model (rawtf.save)
    RUN_DIR/history.json    per-epoch metrics
    RUN_DIR/checkpoints/    training checkpoints (for --resume)
    RUN_DIR/plots/*.png     figures
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rawtf import data, kaggle, metrics, mnist, optim, saving, schedules
from rawtf._io import CONFIG_LIMIT, read_text, write_json
from rawtf._tf import import_tensorflow
from rawtf._version import __version__
from rawtf.augment import AugmentConfig
from rawtf.config import RUN_CONFIG, RUN_FORMAT, TrainConfig, read_run_config
from rawtf.errors import CheckpointError, ConfigError, TrainingInterrupted, UsageError
from rawtf.metrics import confusion_matrix, evaluate, per_class_accuracy, predict
from rawtf.models import Model, get_model
from rawtf.train import fit

tf = import_tensorflow()

CONFIG = RUN_CONFIG
HISTORY = "history.json"
MODEL = "model"
PLOTS = "plots"
CHECKPOINTS = "checkpoints"
CONFUSION = "confusion_matrix.png"
MISTAKES = "most_confident_errors.png"
SHARED_MISTAKES = "shared_mistakes.png"
#: The entries rawtf itself writes in a run folder; --overwrite replaces only these.
OWN_ENTRIES = (CONFIG, HISTORY, MODEL, PLOTS, CHECKPOINTS)

Arrays = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class Run:
    """A loaded run folder."""

    directory: Path
    config: dict[str, Any]
    model: Model
    history: list[dict[str, float]]

    @property
    def plots(self) -> Path:
        return self.directory / PLOTS


@dataclasses.dataclass
class TrainResult:
    """What :func:`train_run` produced: the settings used (model defaults filled in), the
    trained model, its history, the test result (None without a labelled test set), the
    wall seconds from ``started`` to the test result, the run folder (or None), and, with
    a moving average of the weights and a validation split, the averaged weights' result
    on it (the history's validation columns are the raw weights')."""

    config: TrainConfig
    model: Model
    history: Any
    train_size: int
    test: dict[str, float] | None
    seconds: float
    directory: Path | None
    averaged_validation: dict[str, float] | None = None


# ------------------------------------------------------------------------------- data


def load_labelled(source: str = "mnist", data_dir=None) -> tuple[Arrays, Arrays | None]:
    """``(train, test or None)`` array pairs from ``source``: ``"mnist"`` (its two sets,
    from ``data_dir`` or where :func:`rawtf.mnist.resolve_mnist_dir` finds them) or a
    labelled Kaggle CSV (which has no separate test set)."""
    if source == "mnist":
        return mnist.load_mnist(data_dir)
    images, labels = kaggle.load_kaggle_csv(source)
    if labels is None:
        raise UsageError(f"{source}: has no label column; training and evaluation need one")
    return (images, labels), None


def load_training_data(config: TrainConfig) -> tuple[Arrays, Arrays | None, Arrays | None]:
    """``(train, validation or None, test or None)`` as ``config`` asks: its data, the
    first ``train_limit`` images, ``validation_split`` of them held out by ``seed``."""
    (x, y), test = load_labelled(config.data, config.data_dir)
    if config.train_limit:
        x, y = x[: config.train_limit], y[: config.train_limit]
    validation = None
    if config.validation_split:
        (x, y), validation = data.train_validation_split(
            x, y, config.validation_split, seed=config.seed
        )
    return (x, y), validation, test


# ------------------------------------------------------------------------- run folders


def prepare(directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Make ``directory`` ready for a new run. An existing non-empty folder is an error
    unless ``overwrite`` and it is a rawtf run folder (its ``config.json`` says so); then
    rawtf's own entries in it (config, history, model, plots, checkpoints) are removed,
    after all of them have been checked, and anything else is left alone."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{directory}: run folder exists and is not empty (pass --resume to continue "
                "it or --overwrite to start it afresh)"
            )
        _remove_run(directory)
    try:
        (directory / PLOTS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{directory}: cannot create run folder ({e.strerror or e})") from None
    return directory


def _remove_run(directory: Path) -> None:
    """Remove rawtf's entries from the run folder ``directory``: checked first (a rawtf
    run's config, no symbolic links), then moved aside together, then deleted."""
    try:
        read_run_config(directory)
    except CheckpointError as e:
        raise ConfigError(
            f"{directory}: not a rawtf run folder, so --overwrite leaves it alone ({e}); "
            "choose another --out or empty it yourself"
        ) from None
    entries = [directory / name for name in OWN_ENTRIES if (directory / name).is_symlink()]
    if entries:
        raise ConfigError(
            f"{entries[0]}: is a symbolic link; --overwrite removes only what rawtf wrote, "
            "so it changes nothing here (remove the link yourself)"
        )
    entries = [directory / name for name in OWN_ENTRIES if (directory / name).exists()]
    moved: list[Path] = []
    try:
        trash = Path(tempfile.mkdtemp(prefix=".rawtf-overwritten-", dir=directory))
        for entry in entries:
            os.replace(entry, trash / entry.name)
            moved.append(entry)
    except OSError as e:
        for entry in moved:  # put back what was moved: the old run stays whole
            os.replace(trash / entry.name, entry)
        raise ConfigError(f"{directory}: cannot overwrite ({e.strerror or e})") from None
    shutil.rmtree(trash, ignore_errors=True)


def write_config(directory, model: Model, config: TrainConfig, train: Arrays) -> Path:
    """Record what produces this run in ``config.json``: before training starts (so an
    interrupted run can be resumed with the same settings) and again at the end. The
    training set is recorded by size and :func:`rawtf.data.fingerprint`, so resuming can
    check it is given the same data."""
    record = {
        "format": RUN_FORMAT,
        "rawtf_version": __version__,
        "model": model.config,
        "train": config.to_dict(),
        "train_size": len(train[0]),
        "train_sha256": data.fingerprint(*train),
    }
    return write_json(Path(directory) / CONFIG, record, ConfigError)


def check_same_data(directory, train: Arrays, config: TrainConfig) -> None:
    """Raise a :class:`UsageError` unless ``train`` is the training set the run folder
    ``directory`` recorded (runs written before the fingerprint: its size)."""
    record = read_config(directory)
    size, digest = record.get("train_size"), record.get("train_sha256")
    if (digest is None or digest == data.fingerprint(*train)) and size in (None, len(train[0])):
        return
    stored = record.get("train", {})
    where = stored.get("data") if isinstance(stored, dict) else None
    raise UsageError(
        f"{Path(directory) / CONFIG}: the run was trained on other data than --data "
        f"{config.data!r}{f' --data-dir {config.data_dir}' if config.data_dir else ''} gives "
        f"({size} images recorded, {len(train[0])} given; it records --data {where!r}): "
        "resume with the data it was trained on"
    )


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """A run folder's ``config.json``."""
    return read_run_config(directory)


def save_run(directory, model: Model, history, config: TrainConfig, train: Arrays) -> Path:
    """Write the model, its history and its settings into the run folder ``directory``."""
    directory = Path(directory)
    saving.save(model, directory / MODEL)
    rows = getattr(history, "epochs", history)
    write_json(directory / HISTORY, list(rows), ConfigError)
    write_config(directory, model, config, train)
    return directory


def load_run(directory: str | os.PathLike) -> Run:
    """Load a run folder: its config, model and history."""
    directory = Path(directory)
    config = read_config(directory)
    model = saving.load(directory / MODEL)
    try:  # a record only: a damaged one is read as no history
        history = json.loads(read_text(directory / HISTORY, CheckpointError, CONFIG_LIMIT))
    except (CheckpointError, ValueError):
        history = []
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        history = []
    return Run(directory, config, model, history)


# ---------------------------------------------------------------------------- training


def make_strategy(name: str | None, print_fn: Callable[[str], Any] = print):
    """The ``tf.distribute`` strategy ``name`` (``mirrored``, ``multiworker``) or None;
    says how many replicas it has. ``multiworker`` reads the cluster from ``$TF_CONFIG``."""
    if name is None:
        return None
    if name == "mirrored":
        strategy, where = tf.distribute.MirroredStrategy(), ""
    else:
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG") or "null")
            task, workers = cluster["task"], len(cluster["cluster"]["worker"])
        except (ValueError, TypeError, KeyError):
            raise UsageError(
                "--distribute multiworker: set TF_CONFIG to the cluster and this worker's task, "
                '\'{"cluster": {"worker": ["host1:port", ...]}, "task": {"type": "worker", '
                '"index": 0}}\''
            ) from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        where = f" (worker {task.get('index', 0)} of {workers})"
    devices = ", ".join(strategy.extended.worker_devices)
    print_fn(f"distributing over {strategy.num_replicas_in_sync} replica(s){where}: {devices}")
    return strategy


def make_model_and_optimizer(config: TrainConfig, train_size: int, strategy=None):
    """``(model, optimizer)`` as ``config`` (model defaults filled in) describes them, the
    learning-rate schedule spanning the whole run; under ``strategy``'s scope if given."""
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = get_model(config.model, init=config.init, seed=config.seed, **config.model_settings)
        total = data.steps_per_epoch(train_size, config.batch_size) * config.epochs
        rate = schedules.get_schedule(config.schedule, config.lr, total)
        ema = {"ema_momentum": config.ema} if config.ema else {}
        return model, optim.get_optimizer(config.optimizer, learning_rate=rate, **ema)


def train_run(
    config: TrainConfig,
    out: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    save_every_steps: int | None = None,
    verbose: int = 1,
    print_fn: Callable[[str], Any] = print,
    started: float | None = None,
) -> TrainResult:
    """Train as ``config`` says and test the result: the whole workflow of ``rawtf train``.

    With ``out``, everything goes to that run folder (created; an existing one only with
    ``overwrite``; continued from its last checkpoint with ``resume``, when ``config``
    should be :func:`rawtf.config.stored_config`'s, possibly with more epochs). Without it
    nothing is written. ``started`` (a ``time.perf_counter()`` value, default now) is where
    :attr:`TrainResult.seconds` counts from."""
    started = time.perf_counter() if started is None else started
    if resume and out is None:
        raise UsageError("resuming needs the run folder (--out)")
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Before any op runs (multi-worker collectives must be set up first) and anything is written.
    strategy = make_strategy(config.distribute, print_fn)
    train, validation, test = load_training_data(config)
    config = config.with_model_defaults()
    # Before the folder: a setting the model refuses leaves nothing on disk.
    model, optimizer = make_model_and_optimizer(config, len(train[0]), strategy)
    run_dir = None if out is None else Path(out) if resume else prepare(out, overwrite)
    if resume:
        check_same_data(run_dir, train, config)
    if run_dir is not None:
        write_config(run_dir, model, config, train)
    recipe = f" (recipe {config.recipe})" if config.recipe else ""
    print_fn(
        f"training {config.model} on {len(train[0])} images for {config.epochs} epoch(s){recipe}"
    )
    history = _fit(
        config,
        model,
        optimizer,
        train,
        validation,
        strategy,
        run_dir,
        dict(resume=resume, save_every_steps=save_every_steps, verbose=verbose, print_fn=print_fn),
    )
    result = evaluate(model, test) if test is not None else None
    seconds = time.perf_counter() - started
    averaged = None
    if config.ema and validation is not None:
        averaged = evaluate(model, validation)
        print_fn(
            f"validation with the averaged weights: val_accuracy={averaged['accuracy']:.4f} "
            f"val_loss={averaged['loss']:.4f}"
        )
    if run_dir is not None:
        save_run(run_dir, model, history, config, train)
        title = f"{config.model} on {len(train[0])} images ({run_dir.name})"
        _plot(
            print_fn,
            lambda p: p.plot_history(history, title=title),
            run_dir / PLOTS / "history.png",
        )
    return TrainResult(config, model, history, len(train[0]), result, seconds, run_dir, averaged)


def augmentation(config: TrainConfig) -> AugmentConfig | None:
    """The augmentation ``config`` asks for: the affine one with ``augment``, elastic
    distortion with ``elastic`` (alone or beside it), else None."""
    if not (config.augment or config.elastic):
        return None
    affine = {} if config.augment else {"rotation": 0.0, "zoom": 0.0, "shift": 0.0}
    return AugmentConfig(elastic=config.elastic, elastic_sigma=config.elastic_sigma, **affine)


def _fit(config, model, optimizer, train, validation, strategy, run_dir, options):
    """:func:`rawtf.fit` with ``config``'s settings, checkpointing into ``run_dir``."""
    checkpoints = None if run_dir is None else str(run_dir / CHECKPOINTS)
    try:
        return fit(
            model,
            optimizer,
            train,
            epochs=config.epochs,
            batch_size=config.batch_size,
            validation_data=validation,
            seed=config.seed,
            augment=augmentation(config),
            logdir=config.logdir,
            precision=config.precision,
            label_smoothing=config.label_smoothing,
            strategy=strategy,
            checkpoint_dir=checkpoints,
            **options,
        )
    except TrainingInterrupted as e:
        raise TrainingInterrupted(
            f"{e}; continue with: rawtf train --out {run_dir} --resume"
        ) from None


def _plot(print_fn, draw, path: Path) -> Path | None:
    """Save the figure ``draw(rawtf.plots)`` makes to ``path`` and say so, when matplotlib
    is installed; say that it is not otherwise."""
    try:
        from rawtf import plots

        plots.save_figure(draw(plots), path)
    except ConfigError as e:
        print_fn(f"note: {e}")
        return None
    print_fn(f"wrote {path}")
    return path


# ------------------------------------------------------------------ using a trained run


@dataclasses.dataclass
class Evaluation:
    """A model's (or an ensemble's) loss and accuracy on a labelled set, its confusion
    matrix, each class's accuracy, the figures written; for an ensemble, each member's
    result and where the members' mistakes overlap."""

    result: dict[str, float]
    confusion: np.ndarray
    per_class: np.ndarray
    figures: list[Path]
    members: list[dict[str, float]] = dataclasses.field(default_factory=list)
    overlap: metrics.ErrorOverlap | None = None


def load_models(paths: Sequence[str | os.PathLike]) -> list:
    """The model of each run folder or exported SavedModel in ``paths`` (an ensemble when
    there are several)."""
    from rawtf.export import ExportedModel, is_saved_model

    models = []
    for path in map(Path, paths):
        if is_saved_model(path):
            models.append(ExportedModel(path))
        else:
            models.append(load_run(path).model)
    return models


def evaluate_run(
    run: Run | Sequence,
    source: str = "mnist",
    data_dir=None,
    precision: str | None = None,
    print_fn: Callable[[str], Any] = print,
    plots: str | os.PathLike | None = None,
    tta: int = 0,
) -> Evaluation:
    """Evaluate a loaded run (or a list of models: their ensemble) on ``source``'s test set
    (a Kaggle CSV: its rows); draw the confusion matrix and the most confident mistakes into
    ``plots`` (default: a run's ``plots/``; none for an ensemble without it). With several
    models, ``members`` holds each one's own result and ``overlap`` where their mistakes
    coincide, and the plots add the images every member gets wrong. ``tta`` averages each
    model over that many warped views of every image as well
    (:func:`rawtf.metrics.member_probabilities`)."""
    train, test = load_labelled(source, data_dir)
    x, y = test if test is not None else train
    models = [run.model] if isinstance(run, Run) else list(run)
    folder = Path(plots) if plots is not None else run.plots if isinstance(run, Run) else None
    members: list[dict[str, float]] = []
    overlap = None
    if len(models) > 1 or tta:  # probabilities once, for each member's result and the mean
        parts = metrics.member_probabilities(models, x, precision=precision, tta=tta)
        y = data.check_labels(y, len(x), models[0].num_classes, "y")
        if len(models) > 1:
            members = [metrics.scores(part, y) for part in parts]
            overlap = metrics.error_overlap(parts, y)
        probabilities = metrics.mean_probabilities(parts)
        result = metrics.scores(probabilities, y)
    else:
        result = evaluate(models[0], (x, y), precision=precision)
        probabilities, _ = predict(models[0], x, precision=precision)
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y, predictions, models[0].num_classes)
    figures = []
    if folder is not None:
        figures = [
            _plot(print_fn, lambda p: p.plot_confusion_matrix(matrix), folder / CONFUSION),
            _plot(
                print_fn,
                lambda p: p.plot_misclassified(x, np.asarray(y), probabilities),
                folder / MISTAKES,
            ),
        ]
        if overlap is not None:
            figures.append(
                _plot(
                    print_fn,
                    lambda p: p.plot_shared_mistakes(x, y, overlap.wrong, predictions),
                    folder / SHARED_MISTAKES,
                )
            )
    figures = [f for f in figures if f]
    return Evaluation(result, matrix, per_class_accuracy(matrix), figures, members, overlap)


def predict_pictures(
    model: Model,
    paths: Sequence[str],
    precision: str | None = None,
    show: str | os.PathLike | None = None,
    print_fn: Callable[[str], Any] = print,
    tta: int = 0,
) -> np.ndarray:
    """Classify the pictures at ``paths`` (made MNIST-style first), printing
    ``PATH<TAB>DIGIT<TAB>CONFIDENCE`` for each; with ``show`` also draw them as the model
    sees them, captioned, into that PNG; ``tta`` adds warped views of each picture.
    Returns the probabilities."""
    from rawtf import images

    pictures = images.load_digit_images(paths)
    probabilities, labels = predict(model, pictures, precision=precision, tta=tta)
    for path, label, p in zip(paths, labels, probabilities, strict=True):
        print_fn(f"{path}\t{label}\t{p[label]:.4f}")
    if show is not None:
        _plot(print_fn, lambda p: p.plot_predictions(pictures, probabilities, paths), Path(show))
    return probabilities


def write_submission(
    model, test_csv, out, precision: str | None = None, tta: int = 0
) -> np.ndarray:
    """Predict the images of a Kaggle ``test.csv`` with ``model`` (or a list of models: their
    ensemble; ``tta`` warped views of each image as well) and write ``submission.csv`` to
    ``out``; returns the predicted labels."""
    pictures, _ = kaggle.load_kaggle_csv(test_csv)
    _, labels = predict(model, pictures, precision=precision, tta=tta)
    kaggle.write_submission(labels, out)
    return labels


def explore_data(
    source: str, data_dir, out, print_fn: Callable[[str], Any] = print
) -> dict[str, Any]:
    """Statistics of a labelled set (written to ``out/stats.json``), a grid of its first
    120 images and its label distribution (``out/*.png``)."""
    train, test = load_labelled(source, data_dir)
    x, y = train
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = data.statistics(x, y)
    stats = {
        "source": source,
        "train_images": summary.pop("images"),
        "test_images": int(len(test[0])) if test is not None else 0,
        "missing_values": 0,  # the readers reject files with missing values
        **summary,
    }
    print_fn(f"wrote {write_json(out / 'stats.json', stats)}")
    title = f"the first {min(len(x), 120)} of {len(x)} training images ({source})"
    _plot(
        print_fn,
        lambda p: p.plot_images(x[:120], labels=y[:120], columns=12, title=title),
        out / "first_images.png",
    )
    _plot(print_fn, lambda p: p.plot_label_distribution(y), out / "label_distribution.png")
    return stats

"""The plugin contract: every hook a selfsup plugin may implement.

This module is the plugin reference. A plugin is a module (usually ``plugin.py``)
exposed under the ``selfsup`` entry-point group, whose functions are decorated with
:data:`selfsup.hookimpl` and named after the hooks below::

    # pyproject.toml
    [project.entry-points.selfsup]
    ecg = "selfsup_ecg.plugin"

The entry-point name (``ecg``) is the plugin's name and the prefix of its ids
(``ecg:resnet1d``). Registration hooks receive a ``register`` callback that takes the
frozen records of :mod:`selfsup.specs`; factories are referenced lazily so that
``selfsup plugins`` and ``selfsup list`` never import a plugin's heavy stack.

Every hook is called through pluggy's hook caller, so ``tryfirst``/``trylast``
ordering and hook wrappers (``@hookimpl(wrapper=True)``) work as pluggy documents; a
plugin whose implementation raises is reported in one line (plugin, hook, error) and
dropped, and the other plugins keep working (``SELFSUP_STRICT_PLUGINS=1`` raises).

The kinds of component are open: ``register_kinds`` adds a kind (a security plugin's
``trigger``), and ``register_components`` contributes components of any kind, so two
plugins cooperate without importing each other.

Run-event hooks are called on the main process only (``rank == 0``) with plain
Python values, so metrics sinks (TensorBoard, MLflow, Weights & Biases) need no
knowledge of the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from selfsup.specs import (
        ComponentSpec,
        DatasetSpec,
        EncoderSpec,
        EvaluatorSpec,
        KindSpec,
        ObjectiveSpec,
        RoutineSpec,
        TransformSpec,
        ViewSpec,
    )

PROJECT = "selfsup"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- registration


@hookspec
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register encoders: modules that map a modality batch to embeddings.

    The factory is called with the config's ``encoder.params`` and returns a
    :class:`selfsup.interfaces.Encoder` with ``embed_dim`` set.

    Args:
        register: Call once per encoder with an :class:`~selfsup.specs.EncoderSpec`.

    Example:
        >>> @hookimpl
        ... def register_encoders(register):
        ...     register(EncoderSpec(
        ...         name="resnet1d", modality="ecg",
        ...         build="selfsup_ecg.encoders:ResNet1d",
        ...         description="1-D ResNet for 12-lead ECG."))
    """


@hookspec
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register self-supervised objectives (losses with their heads).

    The factory is called as ``build(embed_dim=encoder.embed_dim, **params)`` and
    returns a :class:`selfsup.interfaces.Objective`. Modality-free losses live in the
    core (``core:simclr``); objectives that need a modality-specific masker or decoder
    (MAE, GraphMAE) live in their plugin.

    Args:
        register: Call once per objective with an :class:`~selfsup.specs.ObjectiveSpec`.

    Example:
        >>> @hookimpl
        ... def register_objectives(register):
        ...     register(ObjectiveSpec(
        ...         name="cpc", build="selfsup_ecg.objectives:CPC",
        ...         description="Contrastive predictive coding over time."))
    """


@hookspec
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register evaluators: encoder + data -> named metrics.

    The factory is called with the evaluator's ``params`` and returns an object with
    ``evaluate(encoder, data, ctx) -> dict[str, float]``
    (:class:`selfsup.interfaces.Evaluator`); ``ctx`` is an
    :class:`~selfsup.interfaces.EvalContext` (runtime, seed, views, run directory for
    artefacts, rank). Select on validation data only. ``EvaluatorSpec(ranks="all")``
    runs it on every rank under ``torchrun`` (sharded inference); the default runs it
    on rank 0 only.

    Args:
        register: Call once per evaluator with an :class:`~selfsup.specs.EvaluatorSpec`.

    Example:
        >>> @hookimpl
        ... def register_evaluators(register):
        ...     register(EvaluatorSpec(
        ...         name="af-f1", modality="ecg",
        ...         build="selfsup_ecg.evaluators:AFibF1",
        ...         description="Atrial fibrillation F1 with a frozen encoder."))
    """


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets that load real data from local files (never download).

    The factory is called with the dataset's ``params`` (paths, sizes) and returns a
    :class:`selfsup.interfaces.DataSplits`. A missing path must raise an error that
    names the path and the files it expected.

    Args:
        register: Call once per dataset with a :class:`~selfsup.specs.DatasetSpec`.

    Example:
        >>> @hookimpl
        ... def register_datasets(register):
        ...     register(DatasetSpec(
        ...         name="ptb-xl", modality="ecg",
        ...         build="selfsup_ecg.datasets:PTBXL",
        ...         description="PTB-XL 12-lead ECG records from a local folder."))
    """


@hookspec
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register view makers: a batch of items -> the views an objective consumes.

    The factory is called with the views' ``params`` and returns a callable
    (:class:`selfsup.interfaces.ViewMaker`) applied as ``views(batch, meta)`` to each
    batch on the run's device; ``meta`` is the batch's
    :class:`~selfsup.interfaces.BatchMeta` (indices, labels, flags).

    Args:
        register: Call once per view maker with a :class:`~selfsup.specs.ViewSpec`.

    Example:
        >>> @hookimpl
        ... def register_views(register):
        ...     register(ViewSpec(
        ...         name="jitter-scale", modality="ecg",
        ...         build="selfsup_ecg.views:JitterScale",
        ...         description="Two views by Gaussian jitter and amplitude scaling."))
    """


@hookspec
def register_transforms(register: Callable[[TransformSpec], None]) -> None:
    """Register data transforms: ``(DataSplits, seed) -> DataSplits`` after loading.

    A config lists them under ``data.transforms`` (per arm too); the engine applies
    them in order after the dataset is loaded and before views, with the run's seed,
    records them in the run directory and keys the data cache on them. The factory
    returns a :class:`selfsup.interfaces.Transform`. Poisoning, label noise and
    subsampling are transforms; they flag the items they touch
    (``data.with_flags("train", poisoned=mask)``) so that objectives and evaluators
    can score that subset.

    Args:
        register: Call once per transform with a :class:`~selfsup.specs.TransformSpec`.

    Example:
        >>> @hookimpl
        ... def register_transforms(register):
        ...     register(TransformSpec(
        ...         name="label-noise", build="selfsup_ecg.transforms:LabelNoise",
        ...         description="Flip a fraction of the training labels."))
    """


@hookspec
def register_kinds(register: Callable[[KindSpec], None]) -> None:
    """Open a new kind of component (with its own spec record).

    After this, ``selfsup list <kind>`` and ``describe`` show its components, and a
    factory parameter annotated ``Annotated[T, Ref("<kind>")]`` takes one by id, which
    ``selfsup check`` resolves and the engine builds. Components of the kind come
    from any plugin through :func:`register_components`.

    Args:
        register: Call once per kind with a :class:`~selfsup.specs.KindSpec`.

    Example:
        >>> @hookimpl
        ... def register_kinds(register):
        ...     register(KindSpec(name="trigger", record=TriggerSpec,
        ...                       description="Backdoor triggers, per modality."))
    """


@hookspec
def register_components(register: Callable[[ComponentSpec], None]) -> None:
    """Register components of any kind, including kinds that other plugins open.

    The record's ``kind`` says where it goes; a kind nobody registered is reported as
    this plugin's error. A plugin uses this to contribute to another plugin's kind
    without importing it (an audio plugin's tone trigger for the security plugin).

    Args:
        register: Call once per component with a :class:`~selfsup.specs.ComponentSpec`
            (or any subclass).

    Example:
        >>> @hookimpl
        ... def register_components(register):
        ...     register(ComponentSpec(
        ...         kind="trigger", name="tone", modality="audio",
        ...         build="selfsup_audio.triggers:Tone",
        ...         description="A short sine tone mixed into the waveform."))
    """


@hookspec
def register_routines(register: Callable[[RoutineSpec], None]) -> None:
    """Register training routines: how optimisation proceeds on a device.

    The factory is called with the routine's ``params`` and returns an object with
    ``fit(ctx)`` (:class:`selfsup.interfaces.Routine`). ``ctx`` carries the built
    components, the runtime (device, precision, rank, world size), the training
    settings and the checkpoint/event helpers; routines should resume from
    ``ctx.resume_state`` and call ``ctx.save_checkpoint`` at epoch ends.

    Args:
        register: Call once per routine with a :class:`~selfsup.specs.RoutineSpec`.

    Example:
        >>> @hookimpl
        ... def register_routines(register):
        ...     register(RoutineSpec(
        ...         name="full-graph", modality="graph",
        ...         build="selfsup_graph.routines:FullGraph",
        ...         description="One step per epoch on the whole graph."))
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``selfsup`` command line.

    Args:
        cli: The root :class:`click.Group`; add commands or groups to it.

    Example:
        >>> import click
        >>> @hookimpl
        ... def register_commands(cli):
        ...     @cli.command(name="ecg-convert")
        ...     @click.argument("folder")
        ...     def ecg_convert(folder):
        ...         '''Convert WFDB records in FOLDER to numpy arrays.'''
    """


# --------------------------------------------------------------------------- run events


@hookspec
def run_started(run_dir: str, config: dict[str, Any], info: dict[str, Any]) -> None:
    """A training run (one arm, one seed) is about to train.

    Args:
        run_dir: The run directory (holds ``config.yaml``, ``metrics.jsonl``, ...).
        config: The resolved configuration of this arm as plain data.
        info: ``{"arm": ..., "seed": ..., "world_size": ..., "device": ...}``.

    Example:
        >>> @hookimpl
        ... def run_started(run_dir, config, info):
        ...     print("training", info["arm"], "seed", info["seed"], "in", run_dir)
    """


@hookspec
def step_finished(run_dir: str, step: int, metrics: dict[str, float]) -> None:
    """An optimiser step finished (called every ``train.log_every`` steps).

    Args:
        run_dir: The run directory.
        step: The global optimiser step, from 1.
        metrics: ``loss``, ``lr`` and the objective's named scalars.

    Example:
        >>> @hookimpl
        ... def step_finished(run_dir, step, metrics):
        ...     writer.add_scalar("loss", metrics["loss"], step)  # doctest: +SKIP
    """


@hookspec
def epoch_finished(run_dir: str, epoch: int, metrics: dict[str, float]) -> None:
    """An epoch finished.

    Args:
        run_dir: The run directory.
        epoch: The epoch that finished, from 1.
        metrics: Means over the epoch (``loss`` and the objective's scalars),
            ``epoch_time_s`` and ``items_per_s``.

    Example:
        >>> @hookimpl
        ... def epoch_finished(run_dir, epoch, metrics):
        ...     print(f"epoch {epoch}: loss {metrics['loss']:.3f}")
    """


@hookspec
def checkpoint_saved(run_dir: str, path: str, epoch: int) -> None:
    """A checkpoint was written (atomically) to ``path``.

    Args:
        run_dir: The run directory.
        path: The checkpoint file.
        epoch: The number of completed epochs it holds.

    Example:
        >>> @hookimpl
        ... def checkpoint_saved(run_dir, path, epoch):
        ...     shutil.copy(path, f"/backup/epoch{epoch}.pt")  # doctest: +SKIP
    """


@hookspec
def run_finished(run_dir: str, results: dict[str, Any]) -> None:
    """A run finished and was evaluated.

    Args:
        run_dir: The run directory (``results.json`` is written).
        results: ``{"arm", "seed", "metrics": {name: value}, "train_time_s", ...}``.

    Example:
        >>> @hookimpl
        ... def run_finished(run_dir, results):
        ...     mlflow.log_metrics(results["metrics"])  # doctest: +SKIP
    """


@hookspec
def experiment_finished(output_dir: str, results: dict[str, Any]) -> None:
    """Every run of one ``selfsup run`` finished; the experiment summary is written.

    Called once per command on rank 0, after ``results.json``/``results.md`` of the
    experiment directory are written (also when some runs failed). Trackers use it to
    attach experiment-level artefacts (the summary, a report).

    Args:
        output_dir: The experiment directory (``<output_dir>/<name>``).
        results: ``{"name", "run_dirs": [run directories of this command], "failed": n}``.

    Example:
        >>> @hookimpl
        ... def experiment_finished(output_dir, results):
        ...     print("summary in", output_dir, "of", len(results["run_dirs"]), "runs")
    """

"""The experiment runner: every arm for every seed, then one comparison table.

For each (arm, seed) the runner builds the components from the registry, pretrains
with the arm's routine, evaluates, and writes the run directory
``<output_dir>/<experiment>/<arm>/seed-<seed>/``::

    config.yaml        the resolved arm and seed (plain YAML)
    env.json           python, platform, package versions, hardware, plugins
    metrics.jsonl      step and epoch metrics (JSON lines)
    transforms.json    the data transforms applied (id, params, summary), if any
    checkpoints/last.pt  the last good checkpoint (atomic; weights_only loadable)
    embeddings.npz     <= 2000 pooled test features (+ labels for class tasks), for
                       ``selfsup report``
    artefacts/<evaluator>/  files the evaluators wrote (confusion matrices, curves)
    results.json       {arm, seed, metrics, artefacts, train_time_s, eval_time_s, epochs,
                        steps, items_per_s, status}; artefacts: [{evaluator, path, kind,
                        caption}], paths relative to the run directory
    notices.jsonl      what a later start did to the run: resumed (with the allowed
                       changes, see :mod:`selfsup.engine.resume`), temp files removed

The experiment directory gets ``results.json`` and ``results.md`` (mean ± std over
seeds per arm), merged over every arm with a finished run there (not only the arms
of this command), and its own ``notices.jsonl``. Under ``torchrun`` every rank trains;
evaluators run on rank 0 only unless their spec says ``ranks="all"``; rank 0 writes.

A start cleans up after an interrupted one: temporary files of atomic writes are
removed (a ``SIGKILL`` during a checkpoint write leaves a full-size one), ``--resume``
drops the ``metrics.jsonl`` records written after the checkpoint it continues from,
and a ``report.html`` made before results changed is removed (``selfsup report``
makes a new one). ``config.yaml`` and ``env.json`` are written once, when a run
starts, and never rewritten.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from rich.console import Console
from torch import nn
from torch.utils.data import Subset

from selfsup.components import build_component
from selfsup.config import (
    ArmConfig,
    ComponentRef,
    ConfigError,
    ExperimentConfig,
    baseline_of,
    expand_arms,
)
from selfsup.engine.checkpoint import check_fits, load_checkpoint, write_bytes_atomic
from selfsup.engine.context import RunContext
from selfsup.engine.metrics import read_metrics
from selfsup.engine.results import ExperimentFailedError, ExperimentResult, write_json_atomic
from selfsup.engine.resume import (
    ResumeCheck,
    check_resume,
    merge_earlier,
    notice,
    read_finished,
    record_resume,
    refuse_changed,
    remove_stale_reports,
    tidy_experiment_dir,
)
from selfsup.engine.runinfo import config_record, safe_dir_name, write_config, write_environment
from selfsup.engine.runtime import Runtime
from selfsup.engine.seeding import seed_everything
from selfsup.engine.threads import choose_threads
from selfsup.interfaces import DataSplits, EvalContext, Transform
from selfsup.plugins import PluginManager, get_plugin_manager
from selfsup.resolve import resolve_trackers
from selfsup.reuse import INPUT_FILE, load_init_state
from selfsup.specs import ComponentSpec

__all__ = [
    "ExperimentFailedError",
    "ExperimentResult",
    "RunDirExistsError",
    "run_experiment",
]

#: Rows of the test split kept in ``embeddings.npz``.
MAX_EMBEDDINGS = 2000


class RunDirExistsError(FileExistsError):
    """A run directory already holds files and ``resume`` was not asked for."""


@dataclass
class _Plan:
    """An arm with the spec of each of its components (looked up before any run)."""

    arm: ArmConfig
    dirname: str
    specs: dict[str, ComponentSpec]
    evaluators: list[tuple[ComponentRef, ComponentSpec]] = field(default_factory=list)
    baseline: str | None = None
    trackers: list[dict[str, Any]] = field(default_factory=list)


def _plan(pm: PluginManager, arm: ArmConfig, dirname: str) -> _Plan:
    """Look up every id of an arm (raises the registry's ``UnknownIdError``)."""
    specs = {
        "dataset": pm.get("dataset", arm.data.id),
        "encoder": pm.get("encoder", arm.encoder.id),
    }
    if arm.views is not None:
        specs["views"] = pm.get("views", arm.views.id)
    if arm.objective is not None:
        specs["objective"] = pm.get("objective", arm.objective.id)
        specs["routine"] = pm.get("routine", arm.routine.id)
    for index, ref in enumerate(arm.data.transforms):
        specs[f"transform[{index}]"] = pm.get("transform", ref.id)
    evaluators = [(ref, pm.get("evaluator", ref.id)) for ref in arm.evaluators]
    return _Plan(arm=arm, dirname=dirname, specs=specs, evaluators=evaluators)


def _dirnames(arms: list[ArmConfig]) -> list[str]:
    names: list[str] = []
    for arm in arms:
        base = candidate = safe_dir_name(arm.name)
        n = 2
        while candidate in names:
            candidate, n = f"{base}-{n}", n + 1
        names.append(candidate)
    return names


def run_experiment(
    cfg: ExperimentConfig,
    *,
    source: str = "<config>",
    resume: bool = False,
    overwrite: bool = False,
    pm: PluginManager | None = None,
    console: Console | None = None,
    progress: bool = True,
    only: Sequence[str] = (),
) -> ExperimentResult:
    """Run every arm of ``cfg`` for every seed, evaluate, and write the results.

    Args:
        cfg: The validated experiment.
        source: Where the config came from (shown in messages, recorded in config.yaml).
        resume: Skip finished runs and continue partial ones from their checkpoint;
            each run's ``config.yaml`` must match (a larger ``train.epochs`` continues
            finished runs; see :mod:`selfsup.engine.resume`).
        overwrite: Delete the run directories of the (arm, seed) pairs about to run
            (and only those), then run them afresh; other arms' runs are kept.
        pm: The plugin manager (the process-wide one by default).
        console: Where progress and tables go (a new rich console by default).
        progress: Show progress bars (rank 0 only); without them one line per epoch.
        only: Run only the arms with these names (shell patterns such as ``simclr*``
            work); the experiment summary still merges every finished arm.

    Returns:
        The runs and their summary (also written to the experiment directory).

    Raises:
        UnknownIdError: An id that no loaded plugin registered (before anything runs).
        RunDirExistsError: A run directory is not empty and neither ``resume`` nor
            ``overwrite`` is asked for.
        ResumeConfigError: ``resume`` with a config that differs from a run's
            ``config.yaml`` in a key that changes its meaning (before anything runs).
        CheckpointError: A checkpoint to resume from cannot be read, or was written by
            another model.
        ValueError: Both ``resume`` and ``overwrite``.
        ExperimentFailedError: One or more runs failed (after every other run finished
            and the summary was written); chained to the first failure.
    """
    if resume and overwrite:
        raise ValueError(
            "resume and overwrite exclude each other: --resume continues the runs in their "
            "run directories, --overwrite deletes them first; choose one"
        )
    pm = pm or get_plugin_manager()
    console = console or Console()
    arms = expand_arms(cfg, source=source)
    pairs = list(zip(arms, _dirnames(arms), strict=True))
    if only:
        pairs = _select(pairs, only, source)
    plans = [_plan(pm, arm, d) for arm, d in pairs]
    baselines = baseline_of(arms)
    for plan in plans:
        plan.baseline = baselines.get(plan.arm.name)
    trackers, problems = resolve_trackers(cfg.tracking, pm)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    for plan in plans:
        plan.trackers = trackers
    had_group = dist.is_available() and dist.is_initialized()
    try:
        result, errors = _run_all(cfg, plans, pm, console, source, resume, overwrite, progress)
        if not errors and not had_group and dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank is done before the group goes away
    finally:
        if not had_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if errors:
        lines = [f"{r['arm']} seed {r['seed']}: {r.get('error', '')}" for r in result.failed]
        raise ExperimentFailedError(
            f"{len(result.failed)} of {len(result.runs)} run(s) failed; their results.json "
            "say status 'failed' and their last good checkpoints are kept (continue with "
            f"--resume). Summary: {result.output_dir / 'results.md'}. " + " | ".join(lines)
        ) from errors[0]
    return result


def _run_all(
    cfg: ExperimentConfig,
    plans: list[_Plan],
    pm: PluginManager,
    console: Console,
    source: str,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> tuple[ExperimentResult, list[BaseException]]:
    """Every (arm, seed) in order; returns the result and the failures' exceptions."""
    runtimes = {
        p.arm.name: Runtime.from_env(p.arm.train.device, p.arm.train.precision) for p in plans
    }
    first = next(iter(runtimes.values()))
    main = first.is_main
    exp_dir = Path(cfg.output_dir) / cfg.name
    pairs = [(plan, seed) for plan in plans for seed in cfg.seeds]
    run_dirs = {(p.dirname, s): exp_dir / p.dirname / f"seed-{s}" for p, s in pairs}
    checks: dict[Path, ResumeCheck] = {}
    if resume:  # every run directory is checked before anything trains
        for plan, seed in pairs:
            run_dir = run_dirs[(plan.dirname, seed)]
            record = config_record(plan.arm, seed, cfg.name, source)
            checks[run_dir] = check_resume(run_dir, record)
        refuse_changed(checks.values())
    elif not overwrite:
        _refuse_existing(exp_dir, plans, cfg.seeds)
    first.barrier()
    say = console.print if main else (lambda *a, **k: None)
    say(f"[bold]{cfg.name}[/bold]: {len(plans)} arm(s) x {len(cfg.seeds)} seed(s) -> {exp_dir}")
    if main:
        tidy_experiment_dir(exp_dir, list(run_dirs.values()) if overwrite else [], console)
    first.barrier()
    cache: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    ran: list[Path] = []
    errors: list[BaseException] = []
    for plan, seed in pairs:
        run_dir = run_dirs[(plan.dirname, seed)]
        check = checks.get(run_dir)
        done = read_finished(run_dir) if resume else None
        continuing = done is not None and check is not None and check.grown
        if done is not None and not (continuing and plan.arm.pretrains):
            say(f"[dim]{plan.arm.name} seed {seed}: finished earlier, skipped[/dim]")
            runs.append(done)
            continue
        record, exc = _run_one(
            plan, seed, run_dir, runtimes[plan.arm.name], pm, cache, console,
            cfg.name, source, resume, check, continuing, progress,
        )  # fmt: skip
        runs.append(record)
        ran.append(run_dir)
        if exc is not None:
            errors.append(exc)
    result = ExperimentResult(name=cfg.name, output_dir=exp_dir, runs=runs)
    expected = {
        plan.dirname: functools.partial(config_record, plan.arm, experiment=cfg.name, source=source)
        for plan in plans
    }
    if main:
        merge_earlier(result, expected, set(run_dirs.values()), console)
        result.write()
        if ran:
            for report in remove_stale_reports([exp_dir, *ran]):
                notice(
                    console, exp_dir, "stale-report",
                    f"removed the stale {report} (made before these results); make a new "
                    f"one with: selfsup report {exp_dir}",
                    path=str(report),
                )  # fmt: skip
        console.print(result.table(console.width))
        pm.emit(
            "experiment_finished",
            output_dir=str(exp_dir),
            results={"name": cfg.name, "run_dirs": [str(d) for d in ran], "failed": len(errors)},
        )
    return result, errors


def _select(
    pairs: list[tuple[ArmConfig, str]], only: Sequence[str], source: str
) -> list[tuple[ArmConfig, str]]:
    """The arms named by ``only`` (exact names or shell patterns), in config order.

    Raises:
        ConfigError: A name or pattern that matches no arm (the arms are listed).
    """
    names = [arm.name for arm, _ in pairs]
    for pattern in only:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            raise ConfigError(
                f"{source}: --only {pattern!r} matches no arm; the arms are: {', '.join(names)}"
            )
    return [(arm, d) for arm, d in pairs if any(fnmatch.fnmatchcase(arm.name, p) for p in only)]


def _refuse_existing(exp_dir: Path, plans: list[_Plan], seeds: list[int]) -> None:
    for plan in plans:
        for seed in seeds:
            run_dir = exp_dir / plan.dirname / f"seed-{seed}"
            if run_dir.is_dir() and any(run_dir.iterdir()):
                raise RunDirExistsError(
                    f"{run_dir} exists and is not empty; pass --resume to continue it "
                    f"(finished runs are skipped), --overwrite to delete it and run it "
                    f"again, or --set output_dir=... to start afresh"
                )


def _build(
    ref: ComponentRef, spec: ComponentSpec, pm: PluginManager | None = None, **extra: Any
) -> Any:
    """Build a component, building its ``Ref`` parameters (triggers, attacks) first."""
    return build_component(spec.kind, ref, pm, **extra)


def _load_data(
    plan: _Plan, seed: int, rt: Runtime, pm: PluginManager, cache: dict[str, Any]
) -> tuple[DataSplits, list[dict[str, Any]]]:
    """The arm's dataset (loaded once per experiment) with its transforms applied.

    The loaded dataset is cached by id and parameters (transforms never mutate it);
    the transformed one by those, the transforms and the seed (transforms draw from
    the seed), so arms that share all three (a poisoned arm and its random-init
    baseline) share the result. Returns the splits and, per transform,
    ``{"id", "params", "summary"}`` for the run's record.
    """
    ref = plan.arm.data
    base_key = yaml.safe_dump({"id": ref.id, "params": ref.params}, sort_keys=True)
    if base_key not in cache:
        seed_everything(seed)
        with rt.main_first():
            try:
                cache[base_key] = _build(ref, plan.specs["dataset"], pm)
            except (OSError, ValueError) as exc:
                if not ref.help:
                    raise
                raise _with_data_help(exc, ref.help) from exc
    data = cache[base_key]
    if not ref.transforms:
        return data, []
    key = yaml.safe_dump([ref.model_dump(mode="json"), seed], sort_keys=True)
    if key in cache:
        return cache[key]
    applied: list[dict[str, Any]] = []
    for index, tref in enumerate(ref.transforms):
        transform = _build(tref, plan.specs[f"transform[{index}]"], pm)
        seed_everything(seed)
        out = transform(data, seed)
        if not isinstance(out, DataSplits):
            raise TypeError(
                f"transform {tref.id!r} (data.transforms[{index}]) returned "
                f"{type(out).__name__}, not DataSplits: a bug in its plugin"
            )
        summary = transform.summary() if isinstance(transform, Transform) else {}
        applied.append({"id": tref.id, "params": tref.params, "summary": summary})
        data = out
    cache[key] = (data, applied)
    return data, applied


def _with_data_help(exc: Exception, help_text: str) -> Exception:
    """``exc`` with the config's ``data.help`` (where to get the data) appended."""
    message = f"{exc}. Where to get this data (data.help): {help_text}"
    try:
        return type(exc)(message)
    except Exception:  # an exception class with other arguments
        return RuntimeError(message)


def _run_one(
    plan: _Plan,
    seed: int,
    run_dir: Path,
    rt: Runtime,
    pm: PluginManager,
    cache: dict[str, Any],
    console: Console,
    experiment: str,
    source: str,
    resume: bool,
    check: ResumeCheck | None,
    continuing: bool,
    progress: bool,
) -> tuple[dict[str, Any], BaseException | None]:
    """Build, train, evaluate and record one (arm, seed).

    ``continuing``: a finished run resumed with a larger ``train.epochs`` (its
    checkpoint must be there).
    """
    arm, specs = plan.arm, plan.specs
    config_path = run_dir / "config.yaml"
    had_config = config_path.is_file()
    if rt.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not had_config:  # written once: a resumed run keeps what it started with
            write_config(config_path, arm, seed, experiment, source)
        if not (run_dir / "env.json").is_file():
            write_environment(run_dir / "env.json", rt, pm)
        console.print(f"[bold cyan]{arm.name}[/bold cyan] seed {seed} on {rt.device}")
    if arm.train.threads is not None:
        threads = arm.train.threads
    else:
        threads, why = choose_threads()
        if rt.is_main and rt.device.type == "cpu":
            console.print(
                f"  [dim]threads: {threads} ({why}; set train.threads to choose)[/dim]",
                soft_wrap=True,
            )
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    data, applied = _load_data(plan, seed, rt, pm, cache)
    if rt.is_main and applied:
        write_json_atomic(applied, run_dir / "transforms.json")
    # Seeded after the (cached) data: a run's initial weights do not depend on which
    # run happened to load the data first (or on runs skipped by --resume).
    seed_everything(seed)
    encoder = _build(arm.encoder, specs["encoder"], pm)
    if arm.encoder.init is not None:
        source = load_init_state(arm.encoder.init.from_, encoder)
        if rt.is_main:
            console.print(f"  encoder initialised from {source.kind} {source.path}")
    encoder = encoder.to(rt.device)
    views = _build(arm.views, specs["views"], pm) if arm.views is not None else None
    if isinstance(views, nn.Module):
        views = views.to(rt.device)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    resume_state = None
    if resume and (ckpt_path.is_file() or continuing):
        resume_state = load_checkpoint(ckpt_path)
        check_fits("encoder", resume_state["encoder"], encoder.state_dict(), ckpt_path)
    if resume and rt.is_main:
        record_resume(run_dir, arm, seed, check, resume_state, had_config, console)
    emit = pm.emit if rt.is_main else (lambda event, **kw: None)
    emit(
        "run_started",
        run_dir=str(run_dir),
        config=arm.model_dump(mode="json"),
        info={
            "arm": arm.name,
            "seed": seed,
            "world_size": rt.world_size,
            "device": str(rt.device),
            "experiment": experiment,
            "experiment_dir": str(run_dir.parent.parent),
            "tracking": [dict(t) for t in plan.trackers],
            "resumed": resume_state is not None,
        },
    )
    record: dict[str, Any] = {
        "arm": arm.name, "seed": seed, "data": arm.data.id, "encoder": arm.encoder.id,
        "objective": arm.objective.id if arm.objective else None,
        "baseline": plan.baseline, "metrics": {}, "status": "ok",
    }  # fmt: skip
    record["dataset"] = data.describe()
    if applied:
        record["transforms"] = applied
    error: BaseException | None = None
    steps = 0
    train_time = eval_time = 0.0
    try:
        if arm.pretrains:
            objective = _build(arm.objective, specs["objective"], pm, embed_dim=encoder.embed_dim)
            routine = _build(arm.routine, specs["routine"], pm)
            ctx = RunContext(
                arm=arm, seed=seed, run_dir=run_dir, runtime=rt, encoder=encoder,
                objective=objective.to(rt.device), views=views, data=data,
                emit=pm.emit, resume_state=resume_state, progress=progress, console=console,
            )  # fmt: skip
            start = time.perf_counter()
            routine.fit(ctx)
            train_time = time.perf_counter() - start
            steps = ctx.global_step
            ctx.metrics.close()
        start = time.perf_counter()
        record["metrics"] = _evaluate(plan, encoder, data, rt, seed, views, run_dir, pm, record)
        eval_time = time.perf_counter() - start
        if rt.is_main:
            record.update(_save_embeddings(data, encoder, rt, run_dir / "embeddings.npz", seed))
    except Exception as exc:
        error = exc
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        if rt.is_main:
            text = "".join(traceback.format_exception(exc))
            write_bytes_atomic(text.encode("utf-8"), run_dir / "error.log")
            console.print(f"[bold red]{arm.name} seed {seed} failed:[/bold red] {record['error']}")
    epochs, rate = _epoch_stats(run_dir / "metrics.jsonl")
    record.update(
        train_time_s=train_time, eval_time_s=eval_time, epochs=epochs, steps=steps,
        items_per_s=rate,
    )  # fmt: skip
    if rt.is_main:
        write_json_atomic(record, run_dir / "results.json")
        emit("run_finished", run_dir=str(run_dir), results=record)
        if error is None:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items())
            console.print(f"  {arm.name} seed {seed}: {shown or 'no metrics'}")
    return record, error


def _evaluate(
    plan: _Plan,
    encoder: nn.Module,
    data: DataSplits,
    rt: Runtime,
    seed: int,
    views: Any,
    run_dir: Path,
    pm: PluginManager,
    record: dict[str, Any],
) -> dict[str, float]:
    """Run the arm's evaluators, each with its own :class:`EvalContext`; the metrics.

    An evaluator whose spec says ``ranks="main"`` (the default) runs on rank 0 only;
    ``ranks="all"`` runs on every rank (sharded work). Rank 0's metrics are the ones
    written. Repeated metric names get the evaluator's name as a prefix. Each
    evaluator's artefacts are appended to ``record["artefacts"]`` as
    ``{"evaluator", "path", "kind", "caption"}`` (``path`` relative to ``run_dir``) as
    soon as it returns, so those of earlier evaluators survive a later failure; the
    facts it recorded (``ctx.record``) go to ``record["facts"][name]``.

    Under ``torchrun`` the ranks meet after every evaluator (see :func:`_meet`): the
    others wait while rank 0 evaluates alone, an evaluator on every rank starts on
    every rank together, and a failure on one rank stops the evaluation on all of them
    (the others raise too) instead of leaving them waiting.
    """
    metrics: dict[str, float] = {}
    artefacts: list[dict[str, str]] = record.setdefault("artefacts", [])
    names: set[str] = set()
    encoder.eval()
    group = dist.new_group(backend="gloo", timeout=EVAL_WAIT_TIMEOUT) if rt.distributed else None
    try:
        for ref, spec in plan.evaluators:
            name, n = spec.name, 2
            while name in names:  # the same evaluator twice: separate artefact folders
                name, n = f"{spec.name}-{n}", n + 1
            names.add(name)
            out: Mapping[str, Any] = {}
            error: Exception | None = None
            if rt.is_main or getattr(spec, "ranks", "main") == "all":
                ctx = EvalContext(runtime=rt, seed=seed, views=views, run_dir=run_dir, name=name)
                try:
                    out = _evaluate_one(_build(ref, spec, pm), spec, encoder, data, ctx)
                except Exception as exc:
                    error = exc
                finally:
                    artefacts.extend({"evaluator": spec.id, **a} for a in ctx.artefacts)
                    if ctx.facts:
                        record.setdefault("facts", {})[name] = ctx.facts
            if group is not None and _meet(group, error is not None) and error is None:
                error = RuntimeError(
                    f"evaluator {spec.id!r} failed on another rank of this torchrun job, "
                    "which reports the error (rank 0 in the run's error.log)"
                )
            if error is not None:
                raise error
            for key, value in out.items():
                metrics[key if key not in metrics else f"{spec.name}/{key}"] = float(value)
    finally:
        if group is not None:
            dist.destroy_process_group(group)
    return metrics


def _evaluate_one(
    evaluator: Any, spec: ComponentSpec, encoder: nn.Module, data: DataSplits, ctx: EvalContext
) -> Mapping[str, Any]:
    """Call one evaluator and check that it returned a mapping of metrics."""
    out = evaluator.evaluate(encoder, data, ctx)
    if not isinstance(out, Mapping):
        raise TypeError(
            f"evaluator {spec.id!r} returned {type(out).__name__}, not a dict of metric "
            "name -> float: a bug in its plugin"
        )
    return out


#: How long the other ranks wait for rank 0 while it evaluates alone.
EVAL_WAIT_TIMEOUT = timedelta(hours=24)


def _meet(group: Any, failed: bool) -> bool:
    """Every rank meets after an evaluator; whether it failed on any of them.

    The meeting is an all-reduce on a gloo group of its own with
    :data:`EVAL_WAIT_TIMEOUT`: rank 0 may evaluate alone for longer than the default
    group's collective timeout (10 minutes on NCCL) while the others wait, and every
    rank meets once per evaluator whichever rank ran or failed, so no rank is left
    waiting for a meeting that never comes.
    """
    flag = torch.tensor([1 if failed else 0], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
    return bool(flag.item())


def _save_embeddings(
    data: DataSplits, encoder: nn.Module, rt: Runtime, path: Path, seed: int
) -> dict[str, Any]:
    """Write <= MAX_EMBEDDINGS pooled features of the test (or val) split.

    Labels are saved with them only when the dataset has one class per item
    (:attr:`DataSplits.has_class_labels`); segmentation maps, multi-label vectors and
    unlabelled data save the features alone.
    """
    split = next((s for s in ("test", "val", "train") if getattr(data, s, None) is not None), None)
    if split is None:
        return {}
    try:
        subject = data
        dataset = data.split(split)
        _write_input_info(dataset, path.parent / INPUT_FILE)
        plain = type(data).embed is DataSplits.embed
        keep = None
        if plain and hasattr(dataset, "__len__") and len(dataset) > MAX_EMBEDDINGS:
            keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:MAX_EMBEDDINGS])
            subject = replace(data, **{split: Subset(dataset, keep.tolist())})
        feats, labels = subject.embed(encoder, split, rt)
        if len(feats) > MAX_EMBEDDINGS:
            idx = np.sort(np.random.default_rng(seed).permutation(len(feats))[:MAX_EMBEDDINGS])
            feats, labels = feats[torch.as_tensor(idx)], labels[torch.as_tensor(idx)]
        arrays = {"features": feats.float().numpy(), "split": np.array(split)}
        if data.has_class_labels:
            arrays["labels"] = labels.reshape(-1).numpy()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes_atomic(buf.getvalue(), path)
    except Exception as exc:  # a side product: never fail a finished run over it
        return {"embeddings_error": f"{type(exc).__name__}: {exc}"}
    return {"embeddings": path.name}


def _write_input_info(dataset: Any, path: Path) -> None:
    """Write the shape and dtype of one raw item (what :func:`selfsup.load_encoder` reports)."""
    try:
        item = dataset[0]
    except Exception:  # not map-style (a graph): nothing to say
        return
    x = item[0] if isinstance(item, tuple | list) else item
    if isinstance(x, torch.Tensor):
        info = {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")}
        write_json_atomic(info, path)


def _epoch_stats(path: Path) -> tuple[int, float]:
    """Completed epochs and mean items/s, from the epoch records of ``metrics.jsonl``."""
    epochs: dict[int, float] = {}
    for rec in read_metrics(path):
        if "epoch" in rec and isinstance(rec.get("items_per_s"), int | float):
            epochs[int(rec["epoch"])] = float(rec["items_per_s"])
    if not epochs:
        return 0, 0.0
    return max(epochs), float(np.mean(list(epochs.values())))

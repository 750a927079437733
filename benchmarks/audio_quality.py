"""Audio quality benchmark: the FSDD example configs through ``run_experiment``, over seeds.

Runs, unchanged except for the seeds (and the options below):

* ``examples/audio/verification_fsdd.yaml``: digit and speaker linear probes
  (``audio:label-probe``), cosine speaker verification EER/minDCF
  (``audio:verification``) and the L-TDNN speaker head (``audio:ltdnn-probe``), for the
  MFCC-statistics baseline, the 1-D CNN at random init and the 1-D CNN pretrained with
  DINO on waveform views;
* ``examples/audio/deepfake_fsdd.yaml``: deepfake EER of the spectral-only, SSL-only and
  fused detectors (``audio:deepfake``) on the speaker-disjoint FSDD real-vs-fake split,
  for the same three encoders;
* ``examples/audio/{ssast,hubert,beats}_fsdd.yaml``: each objective against its encoder
  at random init (digit and speaker probes, cosine verification EER/minDCF);
  ``wav2vec2_fsdd.yaml`` likewise, only when named in ``--configs``;
* ``examples/audio/speaker_dino_fsdd.yaml``: DINO speaker embeddings against the same
  encoder at random init and MFCC statistics, cosine EER/minDCF on the validation
  trials (where its settings are chosen) and on the test trials (reported).

Every figure is mean ± std over the seeds (one run per arm and seed; the model selection
inside each evaluator is on validation data), beside the reference figures of
``../shared/DATA.md`` (hand-written scripts, single runs). Writes
``benchmarks/results/audio_quality.json`` and ``audio_quality.md`` (``_<tag>`` with
``--tag``).

Run from the repository root (one thread; the CPU is shared):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/audio_quality.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/audio_quality.py --seeds 0 --epochs 1 --tag quick
    # parts over other seeds, then merged into audio_quality.{json,md}:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/audio_quality.py --seeds 1 2 --tag s12
    .venv/bin/python benchmarks/audio_quality.py --combine benchmarks/results/audio_quality_*.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from selfsup import load_config, run_experiment

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = {
    "verification": ROOT / "examples" / "audio" / "verification_fsdd.yaml",
    "deepfake": ROOT / "examples" / "audio" / "deepfake_fsdd.yaml",
    "ssast": ROOT / "examples" / "audio" / "ssast_fsdd.yaml",
    "hubert": ROOT / "examples" / "audio" / "hubert_fsdd.yaml",
    "beats": ROOT / "examples" / "audio" / "beats_fsdd.yaml",
    "wav2vec2": ROOT / "examples" / "audio" / "wav2vec2_fsdd.yaml",
    "speaker": ROOT / "examples" / "audio" / "speaker_dino_fsdd.yaml",
}
#: Sections that are not run unless named in ``--configs`` (another config's owner).
OPTIONAL = ("wav2vec2",)
#: ../shared/DATA.md, FSDD (index 0-4 test), frozen encoder + logistic regression.
REFERENCE = {
    "mfcc-stats": {"digit_acc": 0.950, "speaker_acc": 0.997, "eer": 0.176},
    "random-init": {"digit_acc": 0.636, "speaker_acc": 0.900, "eer": 0.387},
}
COLUMNS = {
    "verification": [
        "digit_acc",
        "speaker_acc",
        "eer",
        "min_dcf",
        "ltdnn_acc",
        "ltdnn_eer",
    ],
    **{
        name: ["digit_acc", "speaker_acc", "eer", "min_dcf"]
        for name in ("ssast", "hubert", "beats", "wav2vec2")
    },
    # settings chosen on the validation trials (val_*), reported on the test trials
    "speaker": ["val_eer", "val_min_dcf", "eer", "min_dcf"],
    "deepfake": [
        "eer_spectral",
        "eer_ssl",
        "eer_concat",
        "eer_cross_attention",
        "eer_gated",
        "eer_fusion",
    ],
}


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def run_config(name: str, seeds: list[int], epochs: int | None, out_dir: Path) -> dict[str, Any]:
    """Run one example config over ``seeds``; per-arm statistics of its columns."""
    raw = yaml.safe_load(CONFIGS[name].read_text(encoding="utf-8"))
    overrides = [
        f"seeds={json.dumps(seeds)}",
        f"output_dir={json.dumps(str(out_dir))}",
        f"name={raw['name']}-bench",
    ]
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    # load_config resolves the data roots against the config file's folder
    cfg = load_config(CONFIGS[name], overrides=overrides)
    start = time.perf_counter()
    result = run_experiment(cfg, source=str(CONFIGS[name]), overwrite=True, progress=False)
    wall = time.perf_counter() - start
    arms: dict[str, dict[str, Any]] = {}
    # sorted by seed; only the seeds asked for (the runner also lists the runs of
    # other seeds already in the output folder, which a --combine would count twice)
    for run in sorted(result.runs, key=lambda r: int(r.get("seed", 0))):
        if run.get("status") != "ok" or int(run.get("seed", -1)) not in seeds:
            continue
        extra = {"train_time_s": [], "eval_time_s": []}
        row = arms.setdefault(run["arm"], {c: [] for c in COLUMNS[name]} | extra)
        for col in COLUMNS[name]:
            if col in run.get("metrics", {}):
                row[col].append(float(run["metrics"][col]))
        row["train_time_s"].append(float(run.get("train_time_s") or 0.0))
        row["eval_time_s"].append(float(run.get("eval_time_s") or 0.0))
    failed = [f"{r.get('arm')}/seed-{r.get('seed')}" for r in result.failed]
    return {
        "config": str(CONFIGS[name].relative_to(ROOT)),
        "wall_s": wall,
        "failed": failed,
        "arms": {arm: {k: _stats(v) for k, v in row.items()} for arm, row in arms.items()},
    }


def _merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """One config's block from two runs over different seeds (values concatenated)."""
    if old is None:
        return new
    arms: dict[str, Any] = {}
    for arm in dict.fromkeys([*old["arms"], *new["arms"]]):
        a, b = old["arms"].get(arm, {}), new["arms"].get(arm, {})
        arms[arm] = {
            col: _stats(a.get(col, {}).get("values", []) + b.get(col, {}).get("values", []))
            for col in dict.fromkeys([*a, *b])
        }
    return {
        "config": new["config"],
        "wall_s": old["wall_s"] + new["wall_s"],
        "failed": old["failed"] + new["failed"],
        "arms": arms,
    }


def _fmt(cell: dict[str, Any], pct: bool = True) -> str:
    if not cell or cell.get("mean") is None:
        return "-"
    if not pct:
        return f"{cell['mean']:.3f} ± {cell['std']:.3f}"
    return f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The tables of ``report`` as Markdown."""
    lines = [
        "# Audio quality on FSDD",
        "",
        f"Seeds {report['seeds']}; mean ± std, in % except min_dcf (normalised cost, "
        f"P_target=0.01, C_miss=C_fa=1); {report['machine']}.",
        "Reference: ../shared/DATA.md (single runs of hand-written scripts).",
        "",
    ]
    for name, block in report["configs"].items():
        cols = COLUMNS[name]
        counts = {c.get("n", 0) for row in block["arms"].values() for c in row.values()}
        n = f"{min(counts)}-{max(counts)}" if len(counts) > 1 else str(max(counts, default=0))
        lines += [f"## {name} (`{block['config']}`, {n} seeds, {block['wall_s']:.0f} s)", ""]
        lines.append("| arm | " + " | ".join(cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for arm, row in block["arms"].items():
            cells = [_fmt(row.get(c, {}), pct=not c.endswith("min_dcf")) for c in cols]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
            ref = REFERENCE.get(arm) if name == "verification" else None
            if ref:
                cells = [f"{100 * ref[c]:.1f}" if c in ref else "" for c in cols]
                lines.append(f"| {arm} (DATA.md) | " + " | ".join(cells) + " |")
        if name == "deepfake":
            lines += _deepfake_per_seed(block)
        if block["failed"]:
            lines.append(f"\nFailed runs: {', '.join(block['failed'])}")
        lines.append("")
    return "\n".join(lines)


def _deepfake_per_seed(block: dict[str, Any]) -> list[str]:
    """Per-seed spectral / SSL / fusion EERs and the fusion's gap to the better view."""
    lines = [
        "",
        "Per seed (EER %, spectral / SSL / val-selected fusion; gap = fusion minus the "
        "better single view, negative: fusion below both):",
        "",
        "| arm | spectral / SSL / fusion, seed by seed | gap (points) |",
        "|---|---|---|",
    ]
    for arm, row in block["arms"].items():
        cols = [row.get(c, {}).get("values", []) for c in ("eer_spectral", "eer_ssl", "eer_fusion")]
        if not all(cols) or len({len(c) for c in cols}) != 1:
            continue
        runs = " · ".join(
            f"{100 * a:.2f} / {100 * b:.2f} / {100 * f:.2f}" for a, b, f in zip(*cols, strict=True)
        )
        gaps = ", ".join(f"{100 * (f - min(a, b)):+.2f}" for a, b, f in zip(*cols, strict=True))
        lines.append(f"| {arm} | {runs} | {gaps} |")
    return lines


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[c for c in CONFIGS if c not in OPTIONAL],
        choices=list(CONFIGS),
    )
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-audio-quality"))
    parser.add_argument(
        "--combine",
        nargs="+",
        default=None,
        help="merge earlier result JSONs (runs nothing): the parts of a benchmark run "
        "with --configs ... --tag ...; a config in several parts (other seeds) has its "
        "per-seed values concatenated",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    report: dict[str, Any] = {
        "seeds": args.seeds,
        "epochs_override": args.epochs,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "torch": torch.__version__,
        "reference": REFERENCE,
        "configs": {},
    }
    if args.combine:
        seeds: set[int] = set()
        for path in args.combine:
            part = json.loads(Path(path).read_text(encoding="utf-8"))
            for name, block in part["configs"].items():
                report["configs"][name] = _merge(report["configs"].get(name), block)
            seeds |= set(part["seeds"])
            report["epochs_override"] = part["epochs_override"]
        report["seeds"] = sorted(seeds)
    else:
        for name in args.configs:
            print(f"== {name}", flush=True)
            report["configs"][name] = run_config(name, args.seeds, args.epochs, Path(args.out))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "audio_quality" + (f"_{args.tag}" if args.tag else "")
    _write(RESULTS / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    _write(RESULTS / f"{stem}.md", markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

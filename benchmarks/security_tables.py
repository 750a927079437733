"""The security quality tables, read from the runs of the example configs as they are.

Reads an experiment's ``results.json`` (written by ``selfsup run``: mean ± std over
seeds per arm) and writes the headline columns of issue 10 (CA, ASR, the clean
pipeline's false rates, robust accuracy, detection AUROC) as one markdown table per
experiment, with each arm split into its facets (modality, objective, trigger,
pipeline) so that the matrix reads as a matrix. ``selfsup report RUN`` shows every
metric of the same runs; this script only selects and lays them out.

Run from the repository root after the experiments:

    selfsup run examples/security/matrix.yaml
    selfsup run examples/security/ctrl_fashion_mnist.yaml
    .venv/bin/python benchmarks/security_tables.py [--runs runs]

Writes ``benchmarks/results/security_matrix.{json,md}`` and
``benchmarks/results/security_ctrl_fashion_mnist.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"

#: (experiment, output stem, columns (metric, header)).
TABLES: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "security-matrix",
        "security_matrix",
        [
            ("ca", "CA"),
            ("asr", "ASR"),
            ("target_rate_clean", "clean→target"),
            ("robust_acc_fgsm_linf_8", "robust FGSM 8/255"),
            ("robust_acc_pgd_linf_8", "robust PGD 8/255"),
            ("detect_auroc", "BEYOND AUROC"),
            ("poison_auroc", "spectral AUROC"),
        ],
    ),
    (
        "ctrl-fashion-mnist",
        "security_ctrl_fashion_mnist",
        [
            ("ca_m100", "CA"),
            ("asr_m100", "ASR m100"),
            ("asr_m300", "ASR m300"),
            ("asr_all_ctrl_m300", "ASR m300 (CTRL conv.)"),
            ("target_rate_clean_m100", "clean→target"),
            ("trigger_nn_poisoned_m300", "NN poisoned m300"),
            ("detect_auroc", "BEYOND AUROC"),
        ],
    ),
]


def _cell(stat: Any) -> str:
    if not isinstance(stat, dict) or stat.get("mean") is None:
        return "-"
    mean, std, n = float(stat["mean"]), float(stat["std"]), int(stat["n"])
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _seeds(arm: dict[str, Any]) -> str:
    return f"{int(arm['runs']) - int(arm['failed'])}/{arm['runs']}"


def table(exp_dir: Path, columns: list[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    """The markdown table and its JSON of one experiment directory."""
    data = json.loads((exp_dir / "results.json").read_text())
    header = ["arm", *(h for _, h in columns), "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = []
    for arm in data["arms"]:
        cells = [_cell(arm.get(key)) for key, _ in columns]
        lines.append("| " + " | ".join([arm["arm"], *cells, _seeds(arm)]) + " |")
        rows.append({"arm": arm["arm"], **{k: arm.get(k) for k, _ in columns}})
    return "\n".join(lines) + "\n", {"experiment": data["name"], "arms": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for name, stem, columns in TABLES:
        exp_dir = args.runs / name
        if not (exp_dir / "results.json").is_file():
            print(f"skip {name}: no {exp_dir / 'results.json'} (run its example config first)")
            continue
        md, record = table(exp_dir, columns)
        text = (
            f"# {name} (from {exp_dir}/results.json; mean ± std over seeds)\n\n{md}"
            "\nMetrics: see the header of the example config "
            f"(examples/security/{name.replace('security-', '').replace('-', '_')}.yaml).\n"
        )
        write_bytes_atomic(text.encode(), RESULTS / f"{stem}.md")
        write_json_atomic(record, RESULTS / f"{stem}.json")
        print(text)


if __name__ == "__main__":
    main()

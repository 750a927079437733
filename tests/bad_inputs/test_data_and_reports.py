"""Bad-input corpus: datasets' bad files and the report's damaged run files (issue 9).

Each case is one bad input with the answer selfsup must give: the error class (or
the warning, for what the report skips) and the key phrases of the message: the
file, array, line or folder named, and the fix. Datasets: ``vision:image-folder``,
``vision:fashion-mnist``, ``core:arrays`` (directly and through ``selfsup run``).
Reports: ``selfsup report`` on run directories with a damaged ``metrics.jsonl``,
``results.json`` or ``embeddings.npz``: a warning per skipped line or file, and the
rest of the report still written.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from selfsup.cli.main import build_cli
from selfsup.testing import core_manager

# --------------------------------------------------------------------------- image folders


def _png(path: Path, colour: tuple[int, int, int] = (10, 100, 200)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _jpeg_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((64, 64)).save(buf, format="JPEG")
    return buf.getvalue()


def _folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), n: int = 4) -> Path:
    for ci, name in enumerate(classes):
        for i in range(n):
            _png(root / name / f"{i}.png", (40 * ci + 10 * i, 100, 200 - 30 * ci))
    return root


def _single_class(root: Path) -> None:
    _folder(root, classes=("cat",))


def _one_class_left(root: Path) -> None:
    _folder(root, classes=("cat",))
    (root / "dog").mkdir()  # empty: dropped, one class left


def _single_class_train_split(root: Path) -> None:
    _folder(root / "train", classes=("cat",))
    _folder(root / "test", classes=("cat",), n=2)


def _truncated_png(root: Path) -> None:
    _folder(root)
    data = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "0.png").write_bytes(data[: len(data) // 2])


def _truncated_jpeg(root: Path) -> None:
    _folder(root)
    data = _jpeg_bytes()
    (root / "dog" / "photo.jpg").write_bytes(data[: len(data) // 2])


def _text_as_png(root: Path) -> None:
    _folder(root)
    (root / "dog" / "readme.png").write_text("this is not an image\n")


def _empty_file_as_jpeg(root: Path) -> None:
    _folder(root)
    (root / "cat" / "empty.jpg").write_bytes(b"")


IMAGE_FOLDER_ERRORS = [
    pytest.param(
        _single_class,
        ["has 1 class (cat)", "needs at least 2", "add class folders", "unlabelled: true"],
        id="image-folder-single-class",
    ),
    pytest.param(
        _one_class_left,
        ["has 1 class (cat)", "needs at least 2", "unlabelled: true"],
        id="image-folder-one-class-after-empty-dropped",
    ),
    pytest.param(
        _single_class_train_split,
        ["train", "has 1 class (cat)", "needs at least 2"],
        id="image-folder-single-class-train-split",
    ),
    pytest.param(
        _truncated_png, ["0.png", "truncated", "remove or replace"], id="image-folder-truncated-png"
    ),
    pytest.param(
        _truncated_jpeg,
        ["photo.jpg", "truncated", "remove or replace"],
        id="image-folder-truncated-jpeg",
    ),
    pytest.param(
        _text_as_png,
        ["readme.png", "not an image", "remove or replace"],
        id="image-folder-text-file-as-png",
    ),
    pytest.param(
        _empty_file_as_jpeg,
        ["empty.jpg", "remove or replace"],
        id="image-folder-empty-file-as-jpeg",
    ),
]


@pytest.mark.parametrize(("make", "phrases"), IMAGE_FOLDER_ERRORS)
def test_image_folder_bad_inputs_are_named(
    tmp_path: Path, make: Callable[[Path], None], phrases: list[str]
) -> None:
    from selfsup_vision.image_folder import image_folder

    root = tmp_path / "imgs"
    make(root)
    with pytest.raises(ValueError) as err, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "image folder .* holds no images", UserWarning)
        image_folder(str(root), size=8)
    message = str(err.value)
    assert "imgs" in message, message  # the folder or the file is named
    for phrase in phrases:
        assert phrase in message, message


def test_image_folder_empty_class_folder_warns_and_is_dropped(tmp_path: Path) -> None:
    from selfsup_vision.image_folder import image_folder

    root = _folder(tmp_path / "imgs", classes=("cat", "dog"))
    (root / "bird").mkdir()
    with pytest.warns(UserWarning, match=r"bird.*holds no images.*dropped") as record:
        data = image_folder(str(root), size=8)
    assert str(root / "bird") in str(record[0].message)
    assert data.num_classes == 2 and data.meta["class_names"] == ["cat", "dog"]
    assert sorted(set(data.train.labels.tolist())) == [0, 1]


def test_image_folder_single_class_can_be_read_unlabelled(tmp_path: Path) -> None:
    from selfsup_vision.image_folder import image_folder

    root = _folder(tmp_path / "imgs", classes=("cat",), n=10)
    data = image_folder(str(root), size=8, unlabelled=True)
    assert data.num_classes == 0 and not data.has_class_labels
    assert set(data.train.labels.tolist()) == {-1}
    assert len(data.train) + len(data.val) + len(data.test) == 10


# --------------------------------------------------------------------------- fashion-mnist

_FASHION = {
    "train-images-idx3-ubyte.gz": (2051, (4, 28, 28)),
    "train-labels-idx1-ubyte.gz": (2049, (4,)),
    "t10k-images-idx3-ubyte.gz": (2051, (2, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": (2049, (2,)),
}


def _write_fashion(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, (magic, dims) in _FASHION.items():
        header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
        body = (np.arange(int(np.prod(dims))) % 10).astype(np.uint8).tobytes()
        with gzip.open(root / name, "wb") as fh:
            fh.write(header + body)


def _fashion_truncated_gzip(root: Path) -> str:
    _write_fashion(root)
    path = root / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "train-images-idx3-ubyte.gz"


def _fashion_truncated_payload(root: Path) -> str:
    _write_fashion(root)
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "wb") as fh:  # header + a few bytes
        fh.write(struct.pack(">IIII", 2051, 2, 28, 28) + b"\x00" * 10)
    return "t10k-images-idx3-ubyte.gz"


def _fashion_not_gzip(root: Path) -> str:
    _write_fashion(root)
    (root / "train-labels-idx1-ubyte.gz").write_text("not gzip at all")
    return "train-labels-idx1-ubyte.gz"


def _fashion_label_count_mismatch(root: Path) -> str:
    _write_fashion(root)
    with gzip.open(root / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">II", 2049, 3) + bytes([0, 1, 2]))
    return "train-labels-idx1-ubyte.gz"


def _fashion_label_out_of_range(root: Path) -> str:
    _write_fashion(root)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">II", 2049, 2) + bytes([3, 200]))
    return "t10k-labels-idx1-ubyte.gz"


FASHION_ERRORS = [
    pytest.param(_fashion_truncated_gzip, ["truncated or corrupt", "reinstall"],
                 id="fashion-mnist-truncated-gzip"),
    pytest.param(_fashion_truncated_payload, ["expected 1568 values, found 10", "reinstall"],
                 id="fashion-mnist-truncated-idx"),
    pytest.param(_fashion_not_gzip, ["truncated or corrupt", "reinstall"],
                 id="fashion-mnist-not-gzip"),
    pytest.param(_fashion_label_count_mismatch, ["3 labels", "4 images", "reinstall"],
                 id="fashion-mnist-label-count-mismatch"),
    pytest.param(_fashion_label_out_of_range, ["label 200", "0-9", "reinstall"],
                 id="fashion-mnist-label-out-of-range"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "phrases"), FASHION_ERRORS)
def test_fashion_mnist_bad_files_are_named(
    tmp_path: Path, make: Callable[[Path], str], phrases: list[str]
) -> None:
    from selfsup_vision.datasets import fashion_mnist

    bad = make(tmp_path / "fm")
    with pytest.raises(ValueError) as err:
        fashion_mnist(root=str(tmp_path / "fm"), val_size=0)
    message = str(err.value)
    assert bad in message, message
    for phrase in phrases:
        assert phrase in message, message


def test_fashion_mnist_fake_files_read(tmp_path: Path) -> None:
    """The fake idx files of the corpus are valid when not damaged (the cases are real)."""
    from selfsup_vision.datasets import fashion_mnist

    _write_fashion(tmp_path / "ok")
    data = fashion_mnist(root=str(tmp_path / "ok"), val_size=0)
    assert (len(data.train), len(data.test)) == (4, 2)


# --------------------------------------------------------------------------- core:arrays


def _nan_x(path: Path) -> None:
    x = np.ones((20, 3), dtype="float32")
    x[5, 2] = np.nan
    x[7, 0] = np.nan
    np.savez(path, x=x, y=np.arange(20) % 2)


def _inf_x_test(path: Path) -> None:
    x_test = np.ones((6, 3))
    x_test[4, 1] = -np.inf
    np.savez(path, x=np.ones((20, 3)), y=np.arange(20) % 2, x_test=x_test, y_test=np.zeros(6))


def _object_x(path: Path) -> None:
    x = np.empty((4, 1), dtype=object)
    x[:, 0] = [{"a": 1}, "b", 3, None]
    np.savez(path, x=x, y=np.arange(4) % 2)


def _not_npz(path: Path) -> None:
    path.write_text("x,y\n1,0\n2,1\n")


def _pickle_file(path: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"x": [[1.0]], "y": [0]}))


def _npy_file(path: Path) -> None:
    with path.open("wb") as fh:
        np.save(fh, np.zeros((4, 2)))


def _missing_x(path: Path) -> None:
    np.savez(path, features=np.zeros((4, 2)), y=np.arange(4) % 2)


def _length_mismatch(path: Path) -> None:
    np.savez(path, x=np.zeros((5, 2)), y=np.arange(4) % 2)


def _x_one_dim(path: Path) -> None:
    np.savez(path, x=np.zeros(8), y=np.arange(8) % 2)


def _y_two_dim(path: Path) -> None:
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros((4, 2), dtype=int))


def _y_fractional(path: Path) -> None:
    np.savez(path, x=np.zeros((4, 2)), y=np.array([0, 1, 0.5, 1]))


def _y_strings(path: Path) -> None:
    np.savez(path, x=np.zeros((4, 2)), y=np.array(["a", "b", "a", "b"]))


def _y_below_minus_one(path: Path) -> None:
    np.savez(path, x=np.zeros((4, 2)), y=np.array([0, 1, -3, 1]))


def _x_strings(path: Path) -> None:
    np.savez(path, x=np.array([["a", "b"]] * 4), y=np.arange(4) % 2)


def _single_label(path: Path) -> None:
    np.savez(path, x=np.zeros((10, 2)), y=np.array([-1] * 5 + [3] * 5))


def _empty_x(path: Path) -> None:
    np.savez(path, x=np.zeros((0, 2)), y=np.zeros(0, dtype=int))


def _truncated_npz(path: Path) -> None:
    np.savez(path, x=np.zeros((40, 2)), y=np.arange(40) % 2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


ARRAYS_ERRORS = [
    pytest.param(_nan_x, ["array 'x'", "2 non-finite", "index (5, 2)", "np.nan_to_num"],
                 id="arrays-nan-in-x"),
    pytest.param(_inf_x_test, ["array 'x_test'", "1 non-finite", "index (4, 1)"],
                 id="arrays-inf-in-x-test"),
    pytest.param(_object_x, ["array 'x'", "dtype=object", "never unpickles", "numeric"],
                 id="arrays-object-array"),
    pytest.param(_not_npz, ["not a readable .npz", "not a zip archive", "numpy.savez"],
                 id="arrays-text-file"),
    pytest.param(_pickle_file, ["not a readable .npz", "not a zip archive", "numpy.savez"],
                 id="arrays-pickle-file"),
    pytest.param(_npy_file, ["a .npy file", "numpy.savez"], id="arrays-npy-file"),
    pytest.param(_truncated_npz, ["not a readable .npz", "numpy.savez"],
                 id="arrays-truncated-npz"),
    pytest.param(_missing_x, ["lacks key(s) x", "found: features, y"], id="arrays-missing-x"),
    pytest.param(_length_mismatch, ["x has 5 rows but y has 4"], id="arrays-length-mismatch"),
    pytest.param(_x_one_dim, ["x must be [N, features...]", "(8,)"], id="arrays-x-one-dim"),
    pytest.param(_y_two_dim, ["y must be [N]", "(4, 2)"], id="arrays-y-two-dim"),
    pytest.param(_y_fractional, ["non-integer", "index 2", "0.5", "astype"],
                 id="arrays-y-fractional"),
    pytest.param(_y_strings, ["y must hold integer class labels", "<U1"], id="arrays-y-strings"),
    pytest.param(_y_below_minus_one, ["-3", "index 2", "-1 for unlabelled"],
                 id="arrays-y-below-minus-one"),
    pytest.param(_x_strings, ["x must hold numbers", "<U1"], id="arrays-x-strings"),
    pytest.param(_single_label, ["1 class (3)", "needs at least 2", "-1"],
                 id="arrays-single-class"),
    pytest.param(_empty_x, ["x has no rows"], id="arrays-empty"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "phrases"), ARRAYS_ERRORS)
def test_arrays_bad_files_are_named(
    tmp_path: Path, make: Callable[[Path], None], phrases: list[str]
) -> None:
    from selfsup.builtin.datasets import ArrayDataset

    path = tmp_path / "data.npz"
    make(path)
    with pytest.raises(ValueError) as err:
        ArrayDataset(str(path))
    message = str(err.value)
    assert "core:arrays" in message and "data.npz" in message, message
    for phrase in phrases:
        assert phrase in message, message
    assert "allow_pickle" not in message and "unsafely" not in message, message


def test_arrays_all_unlabelled_is_allowed(tmp_path: Path) -> None:
    from selfsup.builtin.datasets import ArrayDataset

    np.savez(tmp_path / "u.npz", x=np.ones((10, 2)), y=np.full(10, -1))
    assert ArrayDataset(str(tmp_path / "u.npz")).num_classes == 0


def _experiment(tmp_path: Path, npz: Path) -> Path:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"""
name: bad
seeds: [0]
output_dir: {tmp_path / "runs"}
data: {{id: core:arrays, params: {{path: {npz}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 3, widths: [8], embed_dim: 4}}}}
views: core:noise-mask
objective: {{id: core:vicreg, params: {{hidden_dim: 8, out_dim: 8}}}}
evaluators: [core:knn]
train: {{epochs: 1, batch_size: 10, device: cpu}}
"""
    )
    return exp


@pytest.mark.parametrize(
    ("make", "phrases"),
    [
        pytest.param(_nan_x, ["array 'x'", "non-finite", "np.nan_to_num"], id="run-arrays-nan"),
        pytest.param(_inf_x_test, ["array 'x_test'", "non-finite"], id="run-arrays-inf"),
    ],
)
def test_run_names_non_finite_arrays_not_the_encoder(
    tmp_path: Path, make: Callable[[Path], None], phrases: list[str]
) -> None:
    npz = tmp_path / "data.npz"
    make(npz)
    result = CliRunner().invoke(
        build_cli(core_manager()), ["run", str(_experiment(tmp_path, npz)), "--no-progress"]
    )
    assert result.exit_code == 1, result.output
    assert "data.npz" in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert "encoder" not in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- reports


def _run_dir(root: Path, arm: str, seed: int, acc: float) -> Path:
    run = root / arm / f"seed-{seed}"
    run.mkdir(parents=True)
    lines = [json.dumps({"step": s, "loss": 4.0 - 0.3 * s}) for s in range(1, 6)]
    lines += [json.dumps({"epoch": e, "step": 3 * e, "loss": 3.0 / e}) for e in (1, 2)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    results = {"arm": arm, "seed": seed, "metrics": {"knn_acc": acc}, "status": "ok"}
    (run / "results.json").write_text(json.dumps(results))
    labels = np.arange(30) % 3
    feats = np.random.default_rng(seed).normal(size=(30, 4)).astype("float32") + labels[:, None]
    np.savez(run / "embeddings.npz", features=feats, labels=labels, split=np.array("test"))
    return run


def _experiment_dir(root: Path) -> Path:
    _run_dir(root, "simclr", 0, 0.8)
    _run_dir(root, "simclr", 1, 0.9)
    _run_dir(root, "byol", 0, 0.7)
    (root / "results.json").write_text(json.dumps({"name": "demo", "runs": []}))
    return root


def _garbage_metrics_line(root: Path) -> list[str]:
    path = root / "simclr" / "seed-0" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(2, "this is not json {")
    lines.insert(4, "[1, 2, 3]")
    path.write_text("\n".join(lines) + "\n")
    return ["metrics.jsonl:3: not JSON", "metrics.jsonl:5: not a JSON object", "skipped"]


def _binary_metrics_line(root: Path) -> list[str]:
    path = root / "byol" / "seed-0" / "metrics.jsonl"
    path.write_bytes(path.read_bytes() + b"\xff\xfe\x00garbage\n")
    return ["metrics.jsonl:8: not UTF-8 text", "skipped"]


def _corrupt_run_results(root: Path) -> list[str]:
    (root / "byol" / "seed-0" / "results.json").write_text('{"arm": "byol", "metrics": {')
    return ["byol/seed-0/results.json: not valid JSON", "left out of the results table"]


def _results_not_object(root: Path) -> list[str]:
    (root / "byol" / "seed-0" / "results.json").write_text("[1, 2]")
    return ["byol/seed-0/results.json: not a JSON object", "left out of the results table"]


def _results_metrics_not_mapping(root: Path) -> list[str]:
    path = root / "byol" / "seed-0" / "results.json"
    path.write_text(json.dumps({"arm": "byol", "seed": 0, "metrics": [0.7]}))
    return ["byol/seed-0/results.json", "'metrics' is not a mapping", "left out"]


def _corrupt_experiment_results(root: Path) -> list[str]:
    (root / "results.json").write_bytes(b"\x00\x01 not json")
    return ["demo/results.json: not valid JSON", "skipped"]


def _corrupt_embeddings(root: Path) -> list[str]:
    (root / "simclr" / "seed-0" / "embeddings.npz").write_bytes(b"garbage, not a zip")
    return ["simclr/seed-0/embeddings.npz", "not a readable .npz", "left out of the embedding"]


def _object_embeddings(root: Path) -> list[str]:
    path = root / "byol" / "seed-0" / "embeddings.npz"
    np.savez(path, features=np.array([[{"a": 1}]], dtype=object))
    return ["byol/seed-0/embeddings.npz", "dtype=object", "left out of the embedding"]


REPORT_WARNINGS = [
    pytest.param(_garbage_metrics_line, "simclr", id="report-garbage-metrics-line"),
    pytest.param(_binary_metrics_line, "byol", id="report-binary-metrics-line"),
    pytest.param(_corrupt_run_results, "simclr", id="report-corrupt-run-results-json"),
    pytest.param(_results_not_object, "simclr", id="report-results-json-not-object"),
    pytest.param(_results_metrics_not_mapping, "simclr", id="report-results-metrics-not-mapping"),
    pytest.param(_corrupt_experiment_results, "byol", id="report-corrupt-experiment-results"),
    pytest.param(_corrupt_embeddings, "byol", id="report-corrupt-embeddings"),
    pytest.param(_object_embeddings, "simclr", id="report-object-embeddings"),
]


@pytest.mark.parametrize(("damage", "still_shown"), REPORT_WARNINGS)
def test_report_warns_about_what_it_skips_and_writes_the_rest(
    tmp_path: Path, damage: Callable[[Path], list[str]], still_shown: str
) -> None:
    root = _experiment_dir(tmp_path / "runs" / "demo")
    phrases = damage(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks out as a Python warning
        result = CliRunner().invoke(build_cli(core_manager()), ["report", str(root)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr, result.stderr
    err = " ".join(result.stderr.split())  # rich may wrap long lines
    for phrase in phrases:
        assert phrase in err, err
    assert "unsafely" not in err and "allow_pickle" not in err, err
    html = (root / "report.html").read_text()
    assert "Skipped" in html and phrases[0].split(":")[0].split("/")[-1] in html
    assert still_shown in html and "data:image/png;base64," in html  # the rest is there
    assert "knn_acc" in result.stdout  # the results table of the readable runs

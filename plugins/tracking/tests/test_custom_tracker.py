"""A third-party tracker on the opened kind; a tracker that fails never stops the run."""

from __future__ import annotations

import json

import pytest
from selfsup import hookimpl
from selfsup_tracking import Tracker, TrackerSpec
from selfsup_tracking.records import flatten


class Recording(Tracker):
    """Keeps what it is told, in a list shared by the test."""

    seen: list[tuple[str, object]] = []

    def __init__(self, tag: str = "x") -> None:
        self.tag = tag

    def start(self, run_dir, config, info) -> None:
        self.seen.append(("start", info["arm"]))

    def log_epoch(self, epoch, metrics) -> None:
        self.seen.append(("epoch", epoch))

    def finish(self, results) -> None:
        self.seen.append(("finish", results["status"]))


class Broken(Tracker):
    """Fails when the run starts."""

    def start(self, run_dir, config, info) -> None:
        raise ConnectionError("the tracking server is down")


class Mine:
    """A third-party plugin adding two trackers to the kind selfsup-tracking opened."""

    @hookimpl
    def register_components(self, register):
        register(TrackerSpec(name="recording", build=Recording, description="Records events."))
        register(TrackerSpec(name="broken", build=Broken, description="Fails on start."))


def test_a_third_party_tracker_is_driven_and_a_broken_one_only_warns(
    tiny_experiment, tmp_path, cli_runner, register_plugin
) -> None:
    info = register_plugin(Mine(), name="mine")
    assert info.status == "active", info.error
    Recording.seen.clear()
    exp = tiny_experiment("tracking: [broken, {id: mine:recording, params: {tag: y}}]")
    with pytest.warns(RuntimeWarning, match="hook run_started raised ConnectionError"):
        result = cli_runner.invoke(["run", str(exp), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert Recording.seen == [("start", "vicreg"), ("epoch", 1), ("epoch", 2), ("finish", "ok")]
    results = json.loads(
        (tmp_path / "runs" / "tracked" / "vicreg" / "seed-0" / "results.json").read_text()
    )
    assert results["status"] == "ok"


def test_flatten_makes_dotted_params() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": []}, "e": "x"}) == {"a.b.c": 1, "a.d": [], "e": "x"}

"""Plugin loading: failures are isolated, reported once, and the environment switches work.

Entry points are faked by replacing ``selfsup.plugins.metadata`` with an object whose
``entry_points`` returns the real ``core`` entry point plus fake ones, so no package
needs installing.
"""

from __future__ import annotations

import importlib.metadata
import types
import warnings
from types import SimpleNamespace
from typing import Any

import pytest
import selfsup.plugins
from selfsup import EncoderSpec, ObjectiveSpec, hookimpl, hookspec
from selfsup.plugins import PluginLoadError, PluginManager


class FakeEntryPoint:
    def __init__(self, name: str, target: Any, dist: tuple[str, str] | None = None) -> None:
        self.name = name
        self.value = f"fake_{name}.plugin"
        self.group = "selfsup"
        self.dist = None
        if dist is not None:
            self.dist = SimpleNamespace(metadata={"Name": dist[0]}, version=dist[1])
        self.target = target
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


def module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


@hookimpl
def _good_encoders(register):
    register(EncoderSpec(name="enc", build="fake_good.encoders:Enc", description="fake"))


@hookimpl
def _good_objectives(register):
    register(ObjectiveSpec(name="obj", build="fake_good.objectives:Obj"))


def good_module(name: str = "fake_good.plugin") -> types.ModuleType:
    return module(name, register_encoders=_good_encoders, register_objectives=_good_objectives)


@pytest.fixture
def eps(monkeypatch) -> list[FakeEntryPoint]:
    """Fake entry points (append to the list) beside the real core one."""
    core = [ep for ep in importlib.metadata.entry_points(group="selfsup") if ep.name == "core"]
    assert core, "the core entry point must be installed (pip install -e ./core)"
    extra: list[FakeEntryPoint] = []

    def entry_points(group: str | None = None, **_: Any) -> list[Any]:
        assert group == "selfsup"
        return [*core, *extra]

    monkeypatch.setattr(selfsup.plugins, "metadata", SimpleNamespace(entry_points=entry_points))
    for var in ("SELFSUP_PLUGINS", "SELFSUP_DISABLE_PLUGINS", "SELFSUP_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return extra


def load(**kwargs: Any) -> tuple[PluginManager, list[str]]:
    """A manager with the registry built, and the warnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PluginManager(**kwargs)
        pm.failed()
    return pm, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def assert_core_works(pm: PluginManager) -> None:
    assert pm.infos["core"].status == "active"
    assert pm.get("objective", "core:simclr").id == "core:simclr"


def test_good_plugin_is_active_with_its_hooks_and_ids(eps) -> None:
    eps.append(FakeEntryPoint("good", good_module(), ("selfsup-good", "1.2.3")))
    pm, warned = load()
    assert warned == []
    info = pm.infos["good"]
    assert (info.status, info.distribution, info.version) == ("active", "selfsup-good", "1.2.3")
    assert info.hooks == ["register_encoders", "register_objectives"]
    assert pm.get("encoder", "good:enc").plugin == "good"
    assert_core_works(pm)


def one_failure(pm: PluginManager, warned: list[str], name: str) -> str:
    failed = pm.failed()
    assert [i.name for i in failed] == [name]
    assert len(warned) == 1, warned
    line = warned[0]
    assert line == failed[0].one_line_error()
    assert "\n" not in line
    assert f"plugin {name!r}" in line and f"SELFSUP_DISABLE_PLUGINS={name}" in line
    return line


def test_import_error_is_one_line_and_core_keeps_working(eps) -> None:
    eps.append(
        FakeEntryPoint("ecg", ModuleNotFoundError("No module named 'scipy'"), ("lab-ecg", "0.3"))
    )
    eps.append(FakeEntryPoint("good", good_module(), ("selfsup-good", "1.0")))
    pm, warned = load()
    line = one_failure(pm, warned, "ecg")
    assert "(lab-ecg 0.3)" in line and "ModuleNotFoundError: No module named 'scipy'" in line
    assert pm.infos["good"].status == "active"
    assert_core_works(pm)


def test_misspelled_hook_is_caught_and_the_plugin_contributes_nothing(eps) -> None:
    @hookimpl
    def register_encoder(register):  # missing "s"
        register(EncoderSpec(name="x", build="a:b"))

    eps.append(
        FakeEntryPoint(
            "typo",
            module(
                "fake_typo", register_encoder=register_encoder, register_objectives=_good_objectives
            ),
            ("selfsup-typo", "2.0"),
        )
    )
    pm, warned = load()
    line = one_failure(pm, warned, "typo")
    assert "unknown hook 'register_encoder' (did you mean 'register_encoders'?)" in line
    assert "(selfsup-typo 2.0)" in line
    assert pm.registry.plugins == {"core"}  # its valid hook was dropped too
    assert pm.pm.get_plugin("typo") is None
    assert_core_works(pm)


def test_raising_registration_hook_drops_the_plugin(eps) -> None:
    seen: list[str] = []

    @hookimpl
    def register_objectives(register):
        raise KeyError("bad table")

    @hookimpl
    def run_finished(run_dir, results):
        seen.append(run_dir)

    eps.append(
        FakeEntryPoint(
            "boom",
            module(
                "fake_boom",
                register_encoders=_good_encoders,
                register_objectives=register_objectives,
                run_finished=run_finished,
            ),
            ("selfsup-boom", "0.1"),
        )
    )
    pm, warned = load()
    line = one_failure(pm, warned, "boom")
    assert "register_objectives raised KeyError: 'bad table'" in line
    assert "boom" not in pm.registry.plugins  # its encoder, registered first, is gone
    pm.emit("run_finished", run_dir="/tmp/x", results={})
    assert seen == []  # a failed plugin's event hooks do not run
    assert_core_works(pm)


def test_two_distributions_claiming_one_name(eps) -> None:
    first = FakeEntryPoint("ecg", good_module(), ("selfsup-ecg", "1.0"))
    second = FakeEntryPoint("ecg", good_module("other.plugin"), ("ecg-fork", "9.9"))
    eps.extend([first, second])
    pm, warned = load()
    line = one_failure(pm, warned, "ecg")
    assert "claimed by two distributions: selfsup-ecg 1.0 and ecg-fork 9.9" in line
    assert first.loads == second.loads == 0
    assert_core_works(pm)


def test_allow_list(eps, monkeypatch) -> None:
    other = FakeEntryPoint("other", ImportError("must not be imported"), ("x", "1"))
    eps.extend([FakeEntryPoint("good", good_module(), ("g", "1")), other])
    monkeypatch.setenv("SELFSUP_PLUGINS", "good")
    pm, warned = load()
    assert warned == []
    assert pm.infos["good"].status == "active"
    assert pm.infos["other"].status == "disabled" and other.loads == 0
    assert_core_works(pm)  # core is always loaded unless disabled explicitly


def test_disable_list_silences_a_broken_plugin(eps, monkeypatch) -> None:
    broken = FakeEntryPoint("ecg", ImportError("nope"), ("lab-ecg", "0.3"))
    eps.append(broken)
    monkeypatch.setenv("SELFSUP_DISABLE_PLUGINS", " ecg , unknown-name ")
    pm, warned = load()
    assert warned == [] and pm.failed() == []
    assert pm.infos["ecg"].status == "disabled" and broken.loads == 0
    assert_core_works(pm)


def test_core_can_be_disabled(eps, monkeypatch) -> None:
    eps.append(FakeEntryPoint("good", good_module(), ("g", "1")))
    monkeypatch.setenv("SELFSUP_DISABLE_PLUGINS", "core")
    pm, _ = load()
    assert pm.infos["core"].status == "disabled"
    assert pm.registry.plugins == {"good"}


@pytest.mark.parametrize("value", ["1", "true"])
def test_strict_mode_raises_on_import_error(eps, monkeypatch, value) -> None:
    eps.append(FakeEntryPoint("ecg", ImportError("No module named 'wfdb'"), ("lab-ecg", "0.3")))
    monkeypatch.setenv("SELFSUP_STRICT_PLUGINS", value)
    with pytest.raises(PluginLoadError, match=r"plugin 'ecg' \(lab-ecg 0.3\).*wfdb"):
        PluginManager()


def test_strict_mode_raises_on_registration_failure(eps, monkeypatch) -> None:
    @hookimpl
    def register_encoders(register):
        register("not a spec")

    eps.append(FakeEntryPoint("bad", module("fake_bad", register_encoders=register_encoders)))
    monkeypatch.setenv("SELFSUP_STRICT_PLUGINS", "1")
    pm = PluginManager()
    with pytest.raises(PluginLoadError, match="expects EncoderSpec records, got str"):
        _ = pm.registry


class TriggerSpecs:
    @hookspec
    def register_triggers(self, register):
        """Plugin-defined hook (see docs/writing-a-plugin.md)."""


def test_plugin_defined_hookspecs_work_whatever_the_load_order(eps) -> None:
    got: list[str] = []

    @hookimpl
    def register_triggers(register):
        register("audio-trigger")

    # "audio" implements a hook that "security" (loaded after it) defines.
    eps.append(FakeEntryPoint("audio", module("fake_audio", register_triggers=register_triggers)))
    eps.append(FakeEntryPoint("security", module("fake_sec", selfsup_hookspecs=TriggerSpecs)))
    pm, warned = load()
    assert warned == []
    assert pm.infos["audio"].status == "active" and pm.infos["security"].status == "active"
    assert pm.infos["audio"].hooks == ["register_triggers"]
    pm.hook.register_triggers(register=got.append)
    assert got == ["audio-trigger"]


def test_hook_of_an_absent_plugin_is_unknown(eps) -> None:
    @hookimpl
    def register_triggers(register):
        pass

    eps.append(FakeEntryPoint("audio", module("fake_audio", register_triggers=register_triggers)))
    pm, warned = load()
    line = one_failure(pm, warned, "audio")
    assert "unknown hook 'register_triggers'" in line


def test_duplicate_id_within_a_plugin_fails_it(eps) -> None:
    @hookimpl
    def register_encoders(register):
        register(EncoderSpec(name="enc", build="a:b"))
        register(EncoderSpec(name="enc", build="a:c"))

    eps.append(FakeEntryPoint("dup", module("fake_dup", register_encoders=register_encoders)))
    pm, warned = load()
    line = one_failure(pm, warned, "dup")
    assert "DuplicateIdError: encoder 'dup:enc' is registered twice" in line
    assert_core_works(pm)


def test_optional_hook_of_an_absent_plugin_is_fine(eps) -> None:
    @hookimpl(optionalhook=True)
    def register_triggers(register):
        pass

    eps.append(FakeEntryPoint("audio", module("fake_audio", register_triggers=register_triggers)))
    pm, warned = load()
    assert warned == [] and pm.infos["audio"].status == "active"


def test_register_twice_under_one_name_fails(selfsup_pm) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert selfsup_pm.register(good_module(), name="dup") is True
        assert selfsup_pm.register(good_module("b"), name="dup") is False
    assert len(caught) == 1 and "already registered" in str(caught[0].message)
    assert selfsup_pm.infos["dup"].status == "active"  # the first one keeps working
    assert selfsup_pm.get("encoder", "dup:enc").plugin == "dup"
    selfsup_pm.unregister("dup")


def test_failing_event_sink_warns_once_and_strict_raises(selfsup_pm) -> None:
    class Sink:
        calls = 0

        @hookimpl
        def step_finished(self, run_dir, step, metrics):
            Sink.calls += 1
            raise OSError("disk full")

    selfsup_pm.register(Sink(), name="sink")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2, 3):
            selfsup_pm.emit("step_finished", run_dir="r", step=step, metrics={})
    assert Sink.calls == 3
    assert len(caught) == 1 and "hook step_finished raised OSError: disk full" in str(
        caught[0].message
    )
    selfsup_pm.strict = True
    with pytest.raises(PluginLoadError) as raised:  # names the plugin and the hook
        selfsup_pm.emit("step_finished", run_dir="r", step=4, metrics={})
    assert "plugin 'sink'" in str(raised.value)
    assert "hook step_finished raised OSError: disk full" in str(raised.value)
    assert isinstance(raised.value.__cause__, OSError)
    selfsup_pm.unregister("sink")


# ------------------------------------------------------------------ the name "core"


def test_a_third_party_core_entry_point_is_refused_and_the_real_core_stays(eps) -> None:
    impostor = FakeEntryPoint("core", good_module("evil.plugin"), ("evil-core", "6.6"))
    eps.append(impostor)
    pm, warned = load()
    assert impostor.loads == 0  # never imported
    assert_core_works(pm)
    assert pm.infos["core"].distribution == "selfsup"
    failed = pm.failed()
    assert [i.name for i in failed] == ["core@evil-core"]
    assert len(warned) == 1 and warned[0] == failed[0].one_line_error()
    line = warned[0]
    assert "(evil-core 6.6)" in line and "reserved for selfsup's own core plugin" in line
    assert line.endswith("[silence with pip uninstall evil-core]")
    assert "evil-core" not in pm.registry.plugins and "good" not in pm.registry.plugins


def test_disabling_core_is_honoured_even_with_an_impostor(eps, monkeypatch) -> None:
    impostor = FakeEntryPoint("core", good_module("evil.plugin"), ("evil-core", "6.6"))
    eps.extend([impostor, FakeEntryPoint("good", good_module(), ("g", "1"))])
    monkeypatch.setenv("SELFSUP_DISABLE_PLUGINS", "core")
    pm, _ = load()
    assert pm.infos["core"].status == "disabled" and pm.infos["core"].distribution == "selfsup"
    assert impostor.loads == 0
    assert pm.registry.plugins == {"good"}  # the impostor did not take core's place


# ------------------------------------------------------------------ lazy build paths


def spec_for(build: str) -> EncoderSpec:
    from dataclasses import replace

    return replace(EncoderSpec(name="enc", build=build), plugin="lab")


@pytest.mark.parametrize(
    ("build", "why"),
    [
        ("selfsup.builtin.encoders:NoSuch", "module 'selfsup.builtin.encoders' has no attribute"),
        ("selfsup.builtin.nope:Enc", "no module named 'selfsup.builtin.nope'"),
        ("selfsup.builtin.encoders", "not of the form 'package.module:attribute'"),
    ],
)
def test_a_wrong_build_path_is_a_plugin_bug(build, why) -> None:
    from selfsup.specs import PluginBugError

    with pytest.raises(PluginBugError) as raised:
        spec_for(build).load()
    text = str(raised.value)
    assert text.startswith(f"plugin 'lab' registers encoder 'lab:enc' with build {build!r}")
    assert why in text
    assert "a bug in plugin 'lab'" in text and "report it to its authors" in text


def test_a_missing_third_party_module_stays_a_missing_dependency(tmp_path, monkeypatch) -> None:
    from selfsup.specs import PluginBugError

    (tmp_path / "lab_needs_dep.py").write_text("import no_such_dependency_xyz\nEnc = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for build, missing in [
        ("lab_needs_dep:Enc", "no_such_dependency_xyz"),  # the module imports a missing one
        ("torch_geometric_xyz.nn:GIN", "torch_geometric_xyz"),  # names a missing package
    ]:
        with pytest.raises(ImportError) as raised:
            spec_for(build).load()
        assert not isinstance(raised.value, PluginBugError)
        assert f"cannot load its factory {build!r}" in str(raised.value)
        assert f"No module named '{missing}'" in str(raised.value)

"""Hooks go through pluggy (ordering, wrappers) and the kinds of component are open.

Plugins here are plain classes registered with :func:`selfsup.testing.core_manager`
(the core plugin plus the given ones, no entry points), as a plugin author would.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from selfsup import ComponentSpec, EncoderSpec, KindSpec, ObjectiveSpec, hookimpl
from selfsup.cli.main import build_cli
from selfsup.plugins import PluginLoadError, PluginManager
from selfsup.registry import CORE_KINDS, UnknownKindError
from selfsup.testing import core_manager


def build(*plugins: tuple[str, object], strict: bool = False) -> tuple[PluginManager, list[str]]:
    """A core manager with ``plugins``, its registry built; and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = core_manager(*plugins)
        pm.strict = strict
        pm.failed()
    return pm, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def invoke(pm: PluginManager, *args: str):
    return CliRunner().invoke(build_cli(pm), list(args))


# --------------------------------------------------------------------------- ordering


class Ordered:
    """Records the order of its registration and run-event calls in ``log``."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def register_encoders(self, register):
        self.log.append(f"{self.name}:register")
        register(EncoderSpec(name=f"enc-{self.name}", build="x:y"))

    def step_finished(self, run_dir, step, metrics):
        self.log.append(f"{self.name}:step")


def ordered(name: str, log: list[str], **opts: bool) -> object:
    """An :class:`Ordered` plugin whose hooks carry the pluggy options ``opts``."""
    marker = hookimpl(**opts) if opts else hookimpl
    cls = type(
        f"Ordered_{name}",
        (Ordered,),
        {
            "register_encoders": marker(Ordered.register_encoders),
            "step_finished": marker(Ordered.step_finished),
        },
    )
    return cls(name, log)


def test_tryfirst_and_trylast_order_registration_and_events() -> None:
    log: list[str] = []
    # registered first..last; without options pluggy would call them last..first
    pm, warned = build(
        ("early", ordered("early", log, tryfirst=True)),
        ("middle", ordered("middle", log)),
        ("late", ordered("late", log, trylast=True)),
    )
    assert warned == []
    assert log == ["early:register", "middle:register", "late:register"]
    assert pm.get("encoder", "middle:enc-middle").plugin == "middle"
    log.clear()
    pm.emit("step_finished", run_dir="r", step=1, metrics={})
    assert log == ["early:step", "middle:step", "late:step"]


def test_without_options_pluggy_calls_the_last_registered_first() -> None:
    log: list[str] = []
    build(("a", ordered("a", log)), ("b", ordered("b", log)))
    assert log == ["b:register", "a:register"]


# --------------------------------------------------------------------------- wrappers


class Wrappers:
    """A new-style wrapper and an old-style hookwrapper on each kind of hook."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl(wrapper=True)
    def register_encoders(self, register):
        self.log.append("new:before")
        register(EncoderSpec(name="from-wrapper", build="x:y"))
        result = yield
        self.log.append("new:after")
        return result

    @hookimpl(hookwrapper=True)
    def register_objectives(self, register):
        self.log.append("old:before")
        outcome = yield
        outcome.get_result()
        self.log.append("old:after")

    @hookimpl(hookwrapper=True)
    def step_finished(self, run_dir, step, metrics):
        self.log.append("old-event:before")
        yield
        self.log.append("old-event:after")

    @hookimpl(wrapper=True)
    def run_finished(self, run_dir, results):
        self.log.append("new-event:before")
        result = yield
        self.log.append("new-event:after")
        return result


class Plain:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def register_encoders(self, register):
        self.log.append("impl:encoders")

    @hookimpl
    def register_objectives(self, register):
        self.log.append("impl:objectives")

    @hookimpl
    def step_finished(self, run_dir, step, metrics):
        self.log.append("impl:step")

    @hookimpl
    def run_finished(self, run_dir, results):
        self.log.append("impl:finished")


def test_new_and_old_style_wrappers_run_around_registration_and_events() -> None:
    log: list[str] = []
    pm, warned = build(("plain", Plain(log)), ("wrap", Wrappers(log)))
    assert warned == []
    assert log == [
        "new:before",
        "impl:encoders",
        "new:after",
        "old:before",
        "impl:objectives",
        "old:after",
    ]
    # a wrapper registers under its own plugin's name
    assert pm.get("encoder", "wrap:from-wrapper").plugin == "wrap"
    log.clear()
    pm.emit("step_finished", run_dir="r", step=1, metrics={})
    pm.emit("run_finished", run_dir="r", results={})
    assert log == [
        "old-event:before",
        "impl:step",
        "old-event:after",
        "new-event:before",
        "impl:finished",
        "new-event:after",
    ]


class RaisingWrapper:
    def __init__(self, where: str) -> None:
        self.where = where

    @hookimpl(wrapper=True)
    def register_encoders(self, register):
        register(EncoderSpec(name="w", build="x:y"))
        if self.where == "setup":
            raise RuntimeError("setup broke")
        result = yield
        if self.where == "teardown":
            raise RuntimeError("teardown broke")
        return result


@pytest.mark.parametrize("where", ["setup", "teardown"])
def test_a_raising_wrapper_fails_only_its_plugin(where) -> None:
    log: list[str] = []
    pm, warned = build(("plain", ordered("plain", log)), ("bad", RaisingWrapper(where)))
    assert [i.name for i in pm.failed()] == ["bad"]
    assert len(warned) == 1 and f"register_encoders raised RuntimeError: {where} broke" in warned[0]
    assert "bad" not in pm.registry.plugins  # what it registered before raising is gone
    assert pm.get("encoder", "plain:enc-plain").plugin == "plain"
    assert pm.get("objective", "core:simclr").plugin == "core"


# --------------------------------------------------------------------------- failures


class Boom:
    def __init__(self, hook: str) -> None:
        self.hook = hook

    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="early", build="x:y"))
        if self.hook == "register_encoders":
            raise KeyError("bad table")

    @hookimpl
    def register_components(self, register):
        if self.hook == "register_components":
            raise ValueError("no components today")

    @hookimpl
    def step_finished(self, run_dir, step, metrics):
        raise OSError("disk full")


@pytest.mark.parametrize(
    ("hook", "error"),
    [
        ("register_encoders", "register_encoders raised KeyError: 'bad table'"),
        ("register_components", "register_components raised ValueError: no components today"),
    ],
)
def test_raising_registration_hook_one_error_rest_works(hook, error) -> None:
    log: list[str] = []
    pm, warned = build(("boom", Boom(hook)), ("ok", ordered("ok", log)))
    assert [i.name for i in pm.failed()] == ["boom"]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith("plugin 'boom' (") and error in warned[0]
    assert warned[0].endswith("[silence with SELFSUP_DISABLE_PLUGINS=boom]")
    assert "boom" not in pm.registry.plugins
    assert pm.get("encoder", "ok:enc-ok").plugin == "ok"
    log.clear()
    pm.emit("step_finished", run_dir="r", step=1, metrics={})  # the failed plugin is gone
    assert log == ["ok:step"]


def test_raising_event_hook_warns_once_and_the_others_still_run() -> None:
    log: list[str] = []
    pm, _ = build(("boom", Boom("none")), ("ok", ordered("ok", log)))
    log.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2, 3):
            pm.emit("step_finished", run_dir="r", step=step, metrics={})
    assert log == ["ok:step"] * 3
    lines = [str(w.message) for w in caught]
    assert len(lines) == 1
    assert "plugin 'boom'" in lines[0]
    assert "hook step_finished raised OSError: disk full" in lines[0]
    assert pm.infos["boom"].status == "active"  # an event error does not unload it


def test_strict_mode_names_the_plugin_and_the_hook() -> None:
    with pytest.raises(PluginLoadError) as raised:
        build(("boom", Boom("register_encoders")), strict=True)
    assert "plugin 'boom'" in str(raised.value)
    assert "register_encoders raised KeyError" in str(raised.value)
    pm, _ = build(("boom", Boom("none")))
    pm.strict = True
    with pytest.raises(PluginLoadError, match=r"plugin 'boom'.*hook step_finished raised OSError"):
        pm.emit("step_finished", run_dir="r", step=1, metrics={})


def test_a_direct_hook_call_without_a_policy_raises_as_usual() -> None:
    pm, _ = build(("boom", Boom("none")))
    with pytest.raises(OSError, match="disk full"):
        pm.hook.step_finished(run_dir="r", step=1, metrics={})


def test_register_called_after_its_hook_is_an_error() -> None:
    kept: list[Any] = []

    class Stash:
        @hookimpl
        def register_encoders(self, register):
            kept.append(register)

    build(("stash", Stash()))
    with pytest.raises(RuntimeError, match="called outside of the hook"):
        kept[0](EncoderSpec(name="late", build="x:y"))


# --------------------------------------------------------------------------- open kinds


@dataclass(frozen=True)
class CorruptionSpec(ComponentSpec):
    """A corruption of the data (the test's own record type)."""

    kind: str = field(default="corruption", kw_only=True)
    severity: int = field(default=1, kw_only=True)


class Corruptions:
    """Opens the kind ``corruption`` and registers one with its own record type."""

    @hookimpl
    def register_kinds(self, register):
        register(
            KindSpec(name="corruption", record=CorruptionSpec, description="Data corruptions.")
        )

    @hookimpl
    def register_components(self, register):
        register(CorruptionSpec(name="blur", build="x:Blur", severity=3, description="Blur."))


class Contributor:
    """Contributes to ``corruption`` without importing the plugin that opens it."""

    @hookimpl
    def register_components(self, register):
        register(ComponentSpec(kind="corruption", name="noise", build="x:N", modality="audio"))
        register(ComponentSpec(kind="encoder", name="enc", build="x:E"))  # a core kind too


@pytest.mark.parametrize("order", ["opener first", "contributor first"])
def test_a_plugin_opens_a_kind_and_another_contributes(order) -> None:
    plugins = [("sec", Corruptions()), ("lab", Contributor())]
    if order == "contributor first":
        plugins.reverse()
    pm, warned = build(*plugins)
    assert warned == []
    kinds = pm.registry.kinds()
    assert list(kinds)[: len(CORE_KINDS)] == list(CORE_KINDS)
    assert kinds["corruption"].plugin == "sec" and kinds["corruption"].record is CorruptionSpec
    assert [s.id for s in pm.registry.list("corruption")] == ["lab:noise", "sec:blur"]
    noise = pm.get("corruption", "lab:noise")
    assert type(noise) is CorruptionSpec and noise.severity == 1 and noise.modality == "audio"
    assert pm.get("corruption", "sec:blur").severity == 3
    assert type(pm.get("encoder", "lab:enc")) is EncoderSpec
    assert [s.id for s in pm.registry.list("corruption", modality="image")] == ["sec:blur"]


def test_list_and_describe_know_an_opened_kind() -> None:
    pm, _ = build(("sec", Corruptions()), ("lab", Contributor()))
    listing = invoke(pm, "list", "corruptions", "--json")
    assert listing.exit_code == 0, listing.output
    assert [(r["id"], r["kind"]) for r in json.loads(listing.stdout)] == [
        ("lab:noise", "corruption"),
        ("sec:blur", "corruption"),
    ]
    table = invoke(pm, "list", "corruption")
    assert "lab:noise" in table.stdout and "sec:blur" in table.stdout
    kinds = {r["kind"]: r for r in json.loads(invoke(pm, "list", "--json").stdout)}
    assert kinds["corruption"] == {
        "kind": "corruption",
        "plugin": "sec",
        "record": "CorruptionSpec",
        "components": 2,
        "description": "Data corruptions.",
    }
    assert kinds["encoder"]["plugin"] == "core" and kinds["encoder"]["description"]
    text = invoke(pm, "list")
    assert "corruption" in text.stdout and "Data corruptions." in text.stdout
    unknown = invoke(pm, "list", "corruptoin")
    assert unknown.exit_code == 2
    assert "Did you mean 'corruption'?" in unknown.stderr and "transform" in unknown.stderr


def test_describe_shows_the_kind_and_the_record_fields() -> None:
    def blur(radius: float = 1.0) -> None:
        """Blur the input with a Gaussian of ``radius``."""

    class Real:
        @hookimpl
        def register_components(self, register):
            register(CorruptionSpec(name="blur", build=blur, severity=2))

    pm, _ = build(("sec", Corruptions()), ("real", Real()))
    result = invoke(pm, "describe", "real:blur", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["kind"] == "corruption" and record["fields"] == {"severity": 2}
    assert [p["name"] for p in record["parameters"]] == ["radius"]
    text = invoke(pm, "describe", "real:blur")
    assert "(corruption, plugin real" in text.stdout and "severity: 2" in text.stdout


def test_a_component_of_an_unknown_kind_is_set_aside_not_an_error() -> None:
    """An optional integration (audio's triggers without selfsup-security) costs nothing."""
    pm, warned = build(("lab", Contributor()))  # nobody opens "corruption"
    assert pm.failed() == [] and warned == []
    assert "lab" in pm.registry.plugins  # its encoder is there
    assert pm.dormant() == [("lab", "corruption", "noise", "no loaded plugin opens it")]
    result = invoke(pm, "plugins")
    assert result.exit_code == 0, result.output
    assert "not active: 1 contribution(s)" in result.stdout and "lab:noise" in result.stdout
    rows = json.loads(invoke(pm, "plugins", "--json").stdout)
    assert [r["dormant"] for r in rows if r["name"] == "lab"] == [
        ["lab:noise (kind 'corruption': no loaded plugin opens it)"]
    ]


def test_a_misspelt_kind_is_set_aside_with_a_suggestion() -> None:
    class Typo:
        @hookimpl
        def register_components(self, register):
            register(ComponentSpec(kind="corruptions", name="blur", build="x:y"))

    pm, warned = build(("sec", Corruptions()), ("lab", Typo()))
    assert pm.failed() == [] and warned == []
    assert pm.dormant()[0][3].endswith("did you mean 'corruption'?")


def test_a_kind_whose_opener_fails_later_is_gone_and_contributions_say_why() -> None:
    class BrokenOpener(Corruptions):
        @hookimpl
        def register_encoders(self, register):
            raise RuntimeError("broken")

    pm, warned = build(("sec", BrokenOpener()), ("lab", Contributor()))
    assert [i.name for i in pm.failed()] == ["sec"]  # the contributor keeps working
    assert "corruption" not in pm.registry.kinds()
    assert pm.dormant() == [
        ("lab", "corruption", "noise", "plugin 'sec' opens it but failed to load")
    ]
    assert len(warned) == 1


def test_typed_record_given_to_the_wrong_hook_fails_the_plugin() -> None:
    class Wrong:
        @hookimpl
        def register_objectives(self, register):
            register(EncoderSpec(name="enc", build="x:y"))

    pm, warned = build(("wrong", Wrong()))
    assert [i.name for i in pm.failed()] == ["wrong"]
    assert "register_objectives expects ObjectiveSpec records, got EncoderSpec" in warned[0]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (ObjectiveSpec(name="o", build="x:y"), "kind 'corruption' takes CorruptionSpec records"),
        (ComponentSpec(name="o", build="x:y"), "has no kind: pass kind=..."),
        (KindSpec(name="x"), "expects ComponentSpec records, got KindSpec"),
    ],
)
def test_register_components_checks_the_record(record, message) -> None:
    class Bad:
        @hookimpl
        def register_components(self, register):
            if isinstance(record, ObjectiveSpec):
                register(ComponentSpec(kind="objective", name="fine", build="x:y"))
                register(type(record)(name="o", build="x:y", kind="corruption"))
            else:
                register(record)

    pm, warned = build(("sec", Corruptions()), ("bad", Bad()))
    assert [i.name for i in pm.failed()] == ["bad"]
    assert message in warned[0]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("corruption", "kind 'corruption' is already opened by plugin 'first'"),
        ("encoder", "kind 'encoder' is a core kind and cannot be opened again"),
    ],
)
def test_a_kind_opened_twice_fails_the_later_plugin(name, message) -> None:
    class Again:
        @hookimpl
        def register_kinds(self, register):
            register(KindSpec(name=name))

    pm, warned = build(("first", Corruptions()), ("second", Again()))
    assert [i.name for i in pm.failed()] == ["second"]
    assert len(warned) == 1 and f"register_kinds: {message}" in warned[0]
    assert pm.registry.kinds()["corruption"].plugin == "first"
    assert pm.registry.kinds()["encoder"].plugin == "core"


@dataclass(frozen=True)
class NeedsField(ComponentSpec):
    kind: str = field(default="needy", kw_only=True)
    target: str = field(kw_only=True)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (KindSpec(name="Bad Name"), "kind name 'Bad Name' is not valid"),
        (KindSpec(name="all"), "kind name 'all' is not valid"),
        (KindSpec(name="needy", record=NeedsField), "fields without a default (target)"),
        (KindSpec(name="other", record=CorruptionSpec), "defaults to kind 'corruption'"),
        (KindSpec(name="x", record=dict), "record must be ComponentSpec or a subclass"),
        (EncoderSpec(name="e", build="x:y"), "expects KindSpec records, got EncoderSpec"),
    ],
)
def test_bad_kind_records_fail_the_plugin(kind, message) -> None:
    class Opener:
        @hookimpl
        def register_kinds(self, register):
            register(kind)

    pm, warned = build(("op", Opener()))
    assert [i.name for i in pm.failed()] == ["op"]
    assert message in warned[0]


def test_registry_kinds_and_unknown_kind_message() -> None:
    pm, _ = build(("sec", Corruptions()))
    kinds = pm.kinds()
    assert set(CORE_KINDS) <= set(kinds) and "transform" in kinds
    assert all(k.description for k in kinds.values())
    with pytest.raises(KeyError) as raised:
        pm.registry.list("corruptions")
    assert isinstance(raised.value, UnknownKindError)
    text = str(raised.value)
    assert text.startswith("kind 'corruptions' is not known")
    assert "Did you mean 'corruption'?" in text and "transform, corruption" in text

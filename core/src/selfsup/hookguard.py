"""How selfsup calls hooks: a guard around each hook implementation.

Every hook is called through pluggy's hook caller, so ``tryfirst``/``trylast`` and
hook wrappers work; failures stay per plugin because :class:`~selfsup.plugins.
PluginManager` replaces each implementation's function, when its plugin is
registered, by a guard (:func:`guard_call`, or :func:`guard_wrapper` for new- and
old-style wrappers) that

1. records which plugin is running (:func:`current_plugin`; the ``register``
   callbacks prefix ids with it), and
2. hands an exception to the *error policy* of the call in progress
   (:func:`error_policy`): registration fails the plugin, run events warn once. With
   no policy (a direct call) the exception propagates unchanged, and a
   :class:`PluginLoadError` (strict mode) always does.

pluggy computed each implementation's argument names from the original function and
calls ``function(*args)``, so a ``functools.wraps`` guard is called the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "ErrorPolicy",
    "PluginLoadError",
    "acting_as",
    "current_plugin",
    "error_policy",
    "guard_call",
    "guard_wrapper",
]


#: An error policy: ``(plugin, hook, exception)``; returns to swallow, raises to abort.
ErrorPolicy = Callable[[str, str, Exception], None]

_CURRENT_PLUGIN: ContextVar[str | None] = ContextVar("selfsup_current_plugin", default=None)
_ERROR_POLICY: ContextVar[ErrorPolicy | None] = ContextVar("selfsup_hook_errors", default=None)


def current_plugin() -> str | None:
    """The name of the plugin whose hook implementation is running, else ``None``."""
    return _CURRENT_PLUGIN.get()


@contextmanager
def acting_as(plugin: str) -> Iterator[None]:
    """Within the block, :func:`current_plugin` is ``plugin``."""
    token = _CURRENT_PLUGIN.set(plugin)
    try:
        yield
    finally:
        _CURRENT_PLUGIN.reset(token)


@contextmanager
def error_policy(policy: ErrorPolicy) -> Iterator[None]:
    """Within the block, a guarded implementation that raises is given to ``policy``."""
    token = _ERROR_POLICY.set(policy)
    try:
        yield
    finally:
        _ERROR_POLICY.reset(token)


class PluginLoadError(RuntimeError):
    """A plugin failed to load or its hook raised (strict mode); names plugin and hook."""


def guard_call(
    fn: Callable[..., Any], plugin: str, hook: str, is_failed: Callable[[str], bool]
) -> Callable[..., Any]:
    """Guard a plain hook implementation: run it as ``plugin``, apply the error policy."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if is_failed(plugin):  # failed earlier in this very hook call
            return None
        try:
            with acting_as(plugin):
                return fn(*args, **kwargs)
        except PluginLoadError:
            raise
        except Exception as exc:
            policy = _ERROR_POLICY.get()
            if policy is None:
                raise
            policy(plugin, hook, exc)
            return None

    return guarded


def guard_wrapper(
    fn: Callable[..., Any], plugin: str, hook: str, is_failed: Callable[[str], bool]
) -> Callable[..., Generator[None, Any, Any]]:
    """Guard a hook wrapper (new- or old-style): a generator that delegates to ``fn``'s.

    A wrapper that fails in its setup becomes transparent; one that fails in its
    teardown leaves the result (or the inner exception) as it was.
    """

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        policy = _ERROR_POLICY.get()
        if is_failed(plugin):
            return (yield)
        try:
            with acting_as(plugin):
                gen = fn(*args, **kwargs)
                next(gen)
        except PluginLoadError:
            raise
        except Exception as exc:
            if isinstance(exc, StopIteration):
                exc = RuntimeError(f"hook wrapper {fn.__qualname__} did not yield")
            if policy is None:
                raise exc from None
            policy(plugin, hook, exc)
            return (yield)
        try:
            received = yield
        except BaseException as inner:  # new-style: the wrapped call raised
            return _throw_into(gen, inner, plugin, hook, policy)
        return _send_into(gen, received, plugin, hook, policy)

    return guarded


def _throw_into(
    gen: Generator[None, Any, Any],
    inner: BaseException,
    plugin: str,
    hook: str,
    policy: ErrorPolicy | None,
) -> Any:
    try:
        with acting_as(plugin):
            gen.throw(inner)
    except StopIteration as stop:
        return stop.value
    except PluginLoadError:
        raise
    except Exception as exc:
        if exc is inner or policy is None:
            raise
        policy(plugin, hook, exc)
        raise inner from None
    gen.close()
    raise inner


def _send_into(
    gen: Generator[None, Any, Any],
    received: Any,
    plugin: str,
    hook: str,
    policy: ErrorPolicy | None,
) -> Any:
    try:
        with acting_as(plugin):
            gen.send(received)
    except StopIteration as stop:
        return stop.value
    except PluginLoadError:
        raise
    except Exception as exc:
        if policy is None:
            raise
        policy(plugin, hook, exc)
        return received
    gen.close()
    error = RuntimeError(f"hook wrapper of {hook} yielded twice")
    if policy is None:
        raise error
    policy(plugin, hook, error)
    return received

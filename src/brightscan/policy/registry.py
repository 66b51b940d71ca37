"""Registry of policies, like the model registry: named policies and the classes that read them back.

- A *named policy* (``gt1``, ``bts_prod``, ...) is a factory registered with
  :func:`register_policy`; :func:`create_policy` builds it, with keyword overrides. A *pattern*
  (``gt<K>`` for any K) is a factory of the regular expression's match.
- A *policy class* is registered with :func:`register_policy_class`, so :func:`policy_from_dict`
  rebuilds a stored policy (``to_dict`` output, a fitted search included) by its class name with
  the class's own ``from_dict``; nothing branches on a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from brightscan.errors import ConfigError
from brightscan.policy.base import BasePolicy, validated_policy

__all__ = ["create_policy", "list_policies", "policy_from_dict", "register_policy", "register_policy_class",
           "register_policy_pattern"]

_NAMED: dict[str, Callable[..., BasePolicy]] = {}
_PATTERNS: list[tuple[re.Pattern[str], str, Callable[[re.Match[str]], Callable[..., BasePolicy]]]] = []
_CLASSES: dict[str, type[BasePolicy]] = {}


def register_policy(name: str, factory: Callable[..., BasePolicy]) -> Callable[..., BasePolicy]:
    """Register a named policy; ``factory(**overrides)`` builds it. Returns ``factory``."""
    if name in _NAMED:
        raise ConfigError(f"policy name {name!r} is already registered")
    _NAMED[name] = factory
    return factory


def register_policy_pattern(pattern: str, label: str,
                            make_factory: Callable[[re.Match[str]], Callable[..., BasePolicy]]) -> None:
    """Register a family of names: a name matching ``pattern`` is built by ``make_factory(match)``.

    ``label`` is how the family is listed (``"gtK"``).
    """
    _PATTERNS.append((re.compile(pattern), label, make_factory))


def register_policy_class(cls: type[BasePolicy]) -> type[BasePolicy]:
    """Class decorator: make ``cls`` readable by :func:`policy_from_dict`."""
    _CLASSES[cls.__name__] = cls
    return cls


def list_policies() -> list[str]:
    """Registered policy names (families by their label), in registration order."""
    return [*_NAMED, *(label for _, label, _ in _PATTERNS)]


def create_policy(name: str, **overrides: Any) -> BasePolicy:
    """Build a registered policy by name, e.g. ``create_policy("gt1", threshold=0.7)``.

    Raises
    ------
    ConfigError
        An unknown name or invalid settings.
    """
    factory = _NAMED.get(name)
    if factory is None:
        for pattern, _, make_factory in _PATTERNS:
            match = pattern.fullmatch(name)
            if match:
                factory = make_factory(match)
                break
    if factory is None:
        raise ConfigError(f"unknown policy {name!r}; known: {', '.join(list_policies())}")
    return validated_policy(factory, overrides, name)


def policy_from_dict(data: dict[str, Any]) -> BasePolicy:
    """Rebuild a policy from :meth:`BasePolicy.to_dict` output (a fitted search keeps ``best_``)."""
    if not isinstance(data, dict) or "policy" not in data:
        raise ConfigError(f"not a policy description: {data!r}")
    cls = _CLASSES.get(data["policy"])
    if cls is None:
        raise ConfigError(f"unknown policy class {data['policy']!r}; known: {', '.join(sorted(_CLASSES))}")
    return cls.from_dict(data)

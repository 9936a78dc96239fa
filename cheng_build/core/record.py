"""``@dataclass`` for the modules on chengc's start-up path, without importing :mod:`dataclasses`.

A cache-miss build imports about twenty record classes. Through :mod:`dataclasses` each costs
~0.6 ms to create (it writes the source of ``__init__``, ``__repr__``, ``__eq__``... and compiles
it) and the module itself ~8 ms to import (it pulls in :mod:`inspect`, :mod:`ast`, :mod:`dis`,
:mod:`tokenize`): a fifth of chengc's own time on a miss (issue 19). The records are declared
exactly as dataclasses are, and the type checker sees :func:`dataclasses.dataclass` itself, so
mypy checks them as dataclasses; at run time :func:`dataclass` below builds the same methods
from closures shared by every class, which costs microseconds per class.

What it supports is the subset those modules use, with the same behaviour: fields in order with
defaults and ``field(default=...)`` / ``field(default_factory=...)``, ``frozen``, ``slots``,
``eq`` (``__eq__`` over the fields, ``__hash__`` over them when frozen, none when not),
``field(repr=False)`` / ``field(compare=False)`` (left out of ``__repr__`` / of ``__eq__`` and
``__hash__``), an
``__init__`` taking fields positionally or by name, ``__repr__``, ``__match_args__``. Anything
else (``order``, ``kw_only``, ``__post_init__``, ``InitVar``, base classes with fields) is
refused when the class is created, not silently ignored. These classes are not
:mod:`dataclasses` classes to ``dataclasses.fields/asdict/replace``: code that needs those
uses :func:`replace` and :func:`asdict` from here, which take both kinds (tests/test_record.py
checks the equivalence).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs start-up time; mypy reads the branch below as usual
if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError as FrozenInstanceError
    from dataclasses import asdict as asdict
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import replace as replace
else:

    class FrozenInstanceError(AttributeError):
        """Assignment to a field of a frozen record (as :class:`dataclasses.FrozenInstanceError`)."""

    class _Missing:
        def __repr__(self) -> str:
            return "MISSING"

    _MISSING = _Missing()

    class _Field:
        __slots__ = ("compare", "default", "default_factory", "repr")

        def __init__(self, default, default_factory, repr, compare):
            self.default = default
            self.default_factory = default_factory
            self.repr = repr
            self.compare = compare

    def field(*, default=_MISSING, default_factory=_MISSING, repr=True, compare=True):
        """A field's default, given as a value or as a function called for each new record;
        ``repr=False`` leaves it out of ``__repr__``, ``compare=False`` out of ``__eq__`` and
        ``__hash__`` (as in :func:`dataclasses.field`)."""
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory, repr, compare)

    # The other options of dataclasses.dataclass, accepted only at their defaults.
    _DEFAULTS = {"init": True, "repr": True, "order": False, "unsafe_hash": False, "kw_only": False,
                 "match_args": True, "weakref_slot": False}

    def dataclass(cls=None, /, *, frozen=False, slots=False, eq=True, **options):
        """Make ``cls`` a record: the methods :func:`dataclasses.dataclass` would add."""
        bad = sorted(k for k, v in options.items() if k not in _DEFAULTS or v != _DEFAULTS[k])
        if bad:
            raise TypeError(f"cheng_build.core.record: unsupported option(s) {bad}")

        def wrap(c):
            return _make(c, frozen=frozen, slots=slots, eq=eq)

        return wrap if cls is None else wrap(cls)

    def _make(cls, *, frozen, slots, eq):
        ns = dict(cls.__dict__)
        for base in cls.__mro__[1:-1]:
            if "_record_fields" in base.__dict__ or "__dataclass_fields__" in base.__dict__:
                raise TypeError(f"{cls.__name__}: a record cannot inherit fields")
        for name in ("__post_init__", "__setattr__", "__delattr__") if frozen else ("__post_init__",):
            if name in ns:
                raise TypeError(f"{cls.__name__}: {name} is not supported on a record")
        names, defaults, factories, hidden, uncompared = [], {}, {}, set(), set()
        for name, ann in ns.get("__annotations__", {}).items():
            text = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
            if text.startswith(("ClassVar", "typing.ClassVar", "InitVar", "dataclasses.InitVar")):
                if text.startswith(("InitVar", "dataclasses.InitVar")):
                    raise TypeError(f"{cls.__name__}.{name}: InitVar is not supported on a record")
                continue
            names.append(name)
            if name in ns:
                value = ns[name]
                if isinstance(value, _Field):
                    if not value.repr:
                        hidden.add(name)
                    if not value.compare:
                        uncompared.add(name)
                    if value.default_factory is not _MISSING:
                        factories[name] = value.default_factory
                    elif value.default is not _MISSING:
                        defaults[name] = value.default
                else:
                    defaults[name] = value
            elif defaults or factories:
                raise TypeError(f"non-default argument {name!r} follows default argument")
        if slots:
            for name in names:
                ns.pop(name, None)
            ns["__slots__"] = tuple(names)
            ns.pop("__dict__", None)
            ns.pop("__weakref__", None)
        else:
            for name in names:  # a field given by field() has no class attribute, as in dataclasses
                if isinstance(ns.get(name), _Field):
                    if name in defaults:
                        ns[name] = defaults[name]
                    else:
                        ns.pop(name)
        names_t = tuple(names)
        ns["_record_fields"] = names_t
        ns["_record_repr"] = tuple(n for n in names if n not in hidden)
        ns["_record_compare"] = tuple(n for n in names if n not in uncompared)
        ns["__match_args__"] = names_t
        if "__init__" not in ns:
            ns["__init__"] = _init(cls.__qualname__, names_t, defaults, factories)
        if "__repr__" not in ns:
            ns["__repr__"] = _repr
        if eq and "__eq__" not in ns:
            ns["__eq__"] = _eq
        if "__hash__" not in ns or ns["__hash__"] is None:
            if eq and frozen:
                ns["__hash__"] = _hash
            elif eq:
                ns["__hash__"] = None
        if frozen:
            ns["__setattr__"] = _frozen_setattr
            ns["__delattr__"] = _frozen_delattr
            if slots:  # as dataclasses does: copy and pickle set the fields past __setattr__
                ns["__getstate__"] = _getstate
                ns["__setstate__"] = _setstate
        if slots:
            new = type(cls)(cls.__name__, cls.__bases__, ns)
            new.__qualname__ = cls.__qualname__
            return new
        for k, v in ns.items():
            if k not in ("__dict__", "__weakref__") and cls.__dict__.get(k, _MISSING) is not v:
                setattr(cls, k, v)
        for name in names:
            if name not in ns and name in cls.__dict__:
                delattr(cls, name)  # a field() without a default: no class attribute
        return cls

    _set = object.__setattr__

    def _init(qualname, names, defaults, factories):
        n = len(names)

        def __init__(self, *args, **kwargs):
            if len(args) > n:
                raise TypeError(f"{qualname}.__init__() takes {n + 1} positional arguments but "
                                f"{len(args) + 1} were given")
            for name, value in zip(names, args, strict=False):  # fewer args than fields
                _set(self, name, value)
            for name in names[len(args):]:
                if name in kwargs:
                    value = kwargs.pop(name)
                elif name in defaults:
                    value = defaults[name]
                elif name in factories:
                    value = factories[name]()
                else:
                    raise TypeError(f"{qualname}.__init__() missing required argument: {name!r}")
                _set(self, name, value)
            if kwargs:
                name = next(iter(kwargs))
                if name in names:
                    raise TypeError(f"{qualname}.__init__() got multiple values for argument {name!r}")
                raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument {name!r}")

        __init__.__qualname__ = f"{qualname}.__init__"
        return __init__

    def _values(self):
        return tuple(getattr(self, name) for name in self._record_compare)

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_repr)
        return f"{type(self).__qualname__}({inner})"

    _repr = __repr__

    def _eq(self, other):
        if other.__class__ is self.__class__:
            return _values(self) == _values(other)
        return NotImplemented

    def _hash(self):
        return hash(_values(self))

    def _getstate(self):
        return [getattr(self, name) for name in self._record_fields]

    def _setstate(self, state):
        for name, value in zip(self._record_fields, state, strict=True):
            _set(self, name, value)

    def _frozen_setattr(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_delattr(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")


    def replace(obj, /, **changes):
        """A copy of the record ``obj`` with ``changes`` (as :func:`dataclasses.replace`)."""
        names = getattr(type(obj), "_record_fields", None)
        if names is None:
            import dataclasses

            return dataclasses.replace(obj, **changes)
        for name in changes:
            if name not in names:
                raise TypeError(f"{type(obj).__qualname__}.__init__() got an unexpected keyword "
                                f"argument {name!r}")
        return type(obj)(**{name: changes[name] if name in changes else getattr(obj, name) for name in names})

    def asdict(obj):
        """The record ``obj`` as a dict, records, lists, tuples and dicts inside it converted too
        (as :func:`dataclasses.asdict`)."""
        if getattr(type(obj), "_record_fields", None) is None:
            import dataclasses

            return dataclasses.asdict(obj)
        return _plain(obj)

    def _plain(v):
        names = getattr(type(v), "_record_fields", None)
        if names is not None:
            return {name: _plain(getattr(v, name)) for name in names}
        if isinstance(v, (list, tuple)):
            return type(v)(_plain(x) for x in v)
        if isinstance(v, dict):
            return type(v)((_plain(k), _plain(x)) for k, x in v.items())
        return v


__all__ = ["FrozenInstanceError", "asdict", "dataclass", "field", "replace"]

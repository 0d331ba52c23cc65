"""Which of a job's annotations name a type of wire value, and whether an argument is of it.

Checked ("plain"): `str`, `int`, `float`, `bool`, `bytes`, `None`; `list` and `list[X]`,
`dict` and `dict[str, X]` (`typing.List`/`Dict` too); unions of these (`X | None`,
`Optional[X]`, `int | str`), nested; `Annotated[X, ...]` as X. An int is a float (a float
argument may travel as one); a bool is neither an int nor a float. A tuple is a list (it
travels as one). Items of `list[X]` or `dict[str, X]` whose X is not plain are not checked (the
container is); a union with a member that is not plain is not checked at all. Anything else is
never checked: `Any`, classes of the user's, `Literal`, TypeVars, Protocols, `Sequence[...]`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pulsarjobs.wire.values import Unencodable, to_value

Fits = Callable[[object], bool]

_SCALARS: dict[object, tuple[str, tuple[type, ...]]] = {  # annotation: its name, what fits it
    str: ("str", (str,)),
    int: ("int", (int,)),
    float: ("float", (float, int)),
    bool: ("bool", (bool,)),
    bytes: ("bytes", (bytes,)),
    None: ("None", (type(None),)),
    type(None): ("None", (type(None),)),
}
_UNIONS = (typing.Union, types.UnionType)
_LONGEST_REPR = 60  # of a value an error shows


class _Passed:
    def __repr__(self) -> str:
        return "PASSED"


# What a chain link checked at enqueue receives from the link before it: any value, as the
# worker checks it once that link returned.
PASSED = _Passed()


@dataclass(frozen=True, slots=True)
class Plain:
    """A checked annotation: its name as errors show it, and whether a value fits it."""

    name: str
    fits: Fits
    scalars: tuple[type, ...] = ()  # the scalar types that fit (an int fits a float)
    exact: frozenset[type] = frozenset()  # types every value of which fits: no call needed
    container: type | None = None  # list or dict
    items: Plain | None = None  # a container's items, if they are checked
    members: tuple[Plain, ...] = ()  # a union's

    def misfit(self, value: object, path: str, parameter: str = "") -> str:
        """Why `value`, which does not fit, does not, at the innermost path that does not."""
        if self.members:  # the one container member of the value's kind, if there is one
            alike = [member for member in self.members if _contains(member, value)]
            if len(alike) == 1:
                return alike[0].misfit(value, path, parameter)
        elif self.items is not None and _contains(self, value):
            entries: Iterable[tuple[object, object]] = ()
            if isinstance(value, Mapping):
                entries = value.items()
            elif isinstance(value, list | tuple):
                entries = enumerate(value)
            for key, item in entries:
                if not self.items.fits(item):
                    return self.items.misfit(item, f"{path}[{key!r}]", parameter)
        return f"{path}{parameter}: expected {self.name}, got {describe(value)}"


def plain(annotation: object) -> Plain | None:
    """The check of an annotation, or None if it is not plain (nothing is checked then)."""
    for scalar, (name, accepted) in _SCALARS.items():
        if annotation is scalar:
            return _scalars(name, accepted)
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is list or origin is list:
        return _container(list, arguments[0] if arguments else None)
    if annotation is dict or (origin is dict and arguments[:1] in ((), (str,))):
        return _container(dict, arguments[1] if arguments else None)
    if origin in _UNIONS:
        members = [plain(argument) for argument in arguments]
        if any(member is None for member in members):
            return None  # one member may be anything
        return _union([member for member in members if member is not None])
    return None


def _contains(check: Plain, value: object) -> bool:
    """Whether `value` is of the kind of container `check` is (its items aside)."""
    if check.container is list:
        return isinstance(value, list | tuple)
    return check.container is dict and isinstance(value, Mapping)


def _scalars(name: str, accepted: tuple[type, ...]) -> Plain:
    exact = frozenset(accepted)
    if int in accepted and bool not in accepted:  # a bool is an int to isinstance, not to a job
        return Plain(name, lambda value: isinstance(value, accepted)
                     and not isinstance(value, bool), accepted, exact)  # fmt: skip
    return Plain(name, lambda value: isinstance(value, accepted), accepted, exact)


def _container(kind: type, item: object) -> Plain:
    items = plain(item) if item is not None else None
    if items is None:
        name = kind.__name__
        if kind is list:
            return Plain(name, lambda value: isinstance(value, list | tuple), container=list)
        return Plain(name, lambda value: isinstance(value, dict | Mapping), container=dict)
    item_fits = items.fits
    if kind is list:
        return Plain(f"list[{items.name}]", lambda value: isinstance(value, list | tuple)
                     and all(map(item_fits, value)), container=list, items=items)  # fmt: skip
    return Plain(f"dict[str, {items.name}]", lambda value: isinstance(value, dict | Mapping)
                 and all(map(item_fits, value.values())), container=dict, items=items)  # fmt: skip


def _union(members: list[Plain]) -> Plain:
    name = " | ".join(member.name for member in members)
    accepted = tuple(dict.fromkeys(kind for member in members for kind in member.scalars))
    scalar = _scalars(name, accepted).fits
    containers = tuple(member.fits for member in members if member.container is not None)
    exact = frozenset(accepted)
    if not containers:
        return Plain(name, scalar, accepted, exact, members=tuple(members))
    return Plain(name, lambda value: scalar(value) or any(fits(value) for fits in containers),
                 accepted, exact, members=tuple(members))  # fmt: skip


def refusal(check: Plain, value: object, path: str, parameter: str = "") -> Exception:
    """TypeError saying how `value` does not fit; ArgumentError, as encoding it would raise,
    when it is no job argument at all (that error says what to pass instead)."""
    try:
        to_value(value)
    except Unencodable as exc:
        return exc.to_argument_error(path)
    return TypeError(check.misfit(value, path, parameter))


def describe(value: object) -> str:
    """A value as an error names what came: its type and its repr, shortened."""
    if value is None:
        return "None"
    shown = repr(value)
    if len(shown) > _LONGEST_REPR:
        shown = shown[: _LONGEST_REPR - 3] + "..."
    return f"{type(value).__name__} {shown}"


@dataclass(frozen=True, slots=True)
class ArgumentTypes:
    """The checks of a job's parameters that have a plain annotation, by where an argument
    binds. The arguments' shape is checked apart: one that binds nowhere is not checked."""

    positions: tuple[tuple[int, frozenset[type], Plain, str], ...]  # index, exact, check, name
    keywords: Mapping[str, Plain | None]  # every parameter an argument may name
    first_extra: int  # the index of the first positional argument `*args` takes
    extra_args: tuple[str, Plain] | None  # `*args: X`
    extra_kwargs: Plain | None  # `**kwargs: X`

    @staticmethod
    def of(func: Callable[..., object], signature: inspect.Signature) -> ArgumentTypes | None:
        """The checks of `func`'s plain annotations; None when it has none, or when they cannot
        be resolved (a name that does not exist in its module)."""
        if not (inspect.isfunction(func) or inspect.ismethod(func)):
            return None  # a class or a callable object: its annotations are not its parameters
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # nothing is checked, rather than a job that cannot be used
            return None
        positions, keywords = [], {}
        first_extra, extra_args, extra_kwargs = 0, None, None
        for index, parameter in enumerate(signature.parameters.values()):
            check = plain(hints[parameter.name]) if parameter.name in hints else None
            kind = parameter.kind
            if kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                first_extra = index + 1
                if check is not None:
                    positions.append((index, check.exact, check, parameter.name))
            if kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                keywords[parameter.name] = check
            elif kind is parameter.VAR_POSITIONAL and check is not None:
                extra_args = (f"*{parameter.name}", check)
            elif kind is parameter.VAR_KEYWORD:
                extra_kwargs = check
        if not (positions or any(keywords.values()) or extra_args or extra_kwargs):
            return None
        return ArgumentTypes(tuple(positions), keywords, first_extra, extra_args, extra_kwargs)

    def check(self, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """TypeError naming the first argument not of its annotated type, and what came
        (ArgumentError if it cannot be encoded at all)."""
        count = len(args)
        for index, exact, check, name in self.positions:  # a value of an exact type needs no call
            if (index < count and type(value := args[index]) not in exact
                    and not check.fits(value) and value is not PASSED):  # fmt: skip
                raise refusal(check, value, f"args[{index}]", f" ({name})")
        if self.extra_args is not None and count > self.first_extra:
            name, check = self.extra_args
            for index in range(self.first_extra, count):
                if not check.fits(args[index]):
                    raise refusal(check, args[index], f"args[{index}]", f" ({name})")
        if kwargs:
            keywords, extra = self.keywords, self.extra_kwargs
            for key, value in kwargs.items():
                named = keywords.get(key, extra)
                if named is not None and type(value) not in named.exact and not named.fits(value):
                    raise refusal(named, value, f"kwargs[{key!r}]")

"""HTTP trigger route templates, matched the way ASP.NET Core routing (the Functions host) does.

Supported: literal segments (case-insensitive), `{name}`, constraints `{id:int}` (several may be
chained, unknown ones are ignored rather than refused), optional `{name?}`, defaults
`{name=value}`, catch-all `{*rest}`, parameters inside a segment (`{file}.{ext}`) and `{{`/`}}`
escapes. Among templates that match, the most specific wins: literals before constrained
parameters before plain, optional and catch-all ones.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _integer(bounds: tuple[int, int]) -> Callable[[str], bool]:
    return lambda value: re.fullmatch(r"-?\d+", value) is not None and bounds[0] <= int(value) <= bounds[1]


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return check


def _finite(value: str) -> bool:
    return _parses(float)(value) and math.isfinite(float(value))


_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _integer(_INT32),
    "long": _integer(_INT64),
    "bool": lambda value: value.lower() in {"true", "false"},
    "guid": _parses(uuid.UUID),
    "alpha": lambda value: re.fullmatch(r"[A-Za-z]+", value) is not None,
    "double": _finite,
    "float": _finite,
    "decimal": _finite,
    "datetime": _parses(datetime.fromisoformat),
    "required": bool,
}


def _constraint(text: str) -> Callable[[str], bool] | None:
    """A predicate for one constraint, or None for constraints this host does not know."""
    name, _, argument = text.partition("(")
    name = name.strip().lower()
    if not argument:
        return _SIMPLE_CONSTRAINTS.get(name)
    argument = argument[:-1] if argument.endswith(")") else argument
    if name == "regex":
        pattern = re.compile(argument, re.IGNORECASE)
        return lambda value: pattern.search(value) is not None
    numbers = [int(part) for part in argument.split(",") if part.strip().lstrip("-").isdigit()]
    is_int = _SIMPLE_CONSTRAINTS["long"]
    checks: dict[str, Callable[[str], bool]] = {
        "minlength": lambda value: len(value) >= numbers[0],
        "maxlength": lambda value: len(value) <= numbers[0],
        "length": lambda value: numbers[0] <= len(value) <= numbers[-1],
        "min": lambda value: is_int(value) and int(value) >= numbers[0],
        "max": lambda value: is_int(value) and int(value) <= numbers[0],
        "range": lambda value: is_int(value) and numbers[0] <= int(value) <= numbers[-1],
    }
    return checks.get(name) if numbers else None


@dataclass(frozen=True)
class _Parameter:
    name: str
    checks: tuple[Callable[[str], bool], ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False


# Precedence of a segment: lower sorts first (more specific).
_LITERAL, _COMPLEX, _CONSTRAINED, _PLAIN, _OPTIONAL, _CATCH_ALL = range(6)


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template; `match(path)` gives its route parameters or None."""

    template: str
    _pattern: re.Pattern[str] = field(repr=False, compare=False)
    _parameters: tuple[_Parameter, ...] = field(repr=False, compare=False)
    precedence: tuple[int, ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        template = template.strip("/")
        regex = ""
        parameters: list[_Parameter] = []
        precedence: list[int] = []
        segments = template.split("/") if template else []
        for index, segment in enumerate(segments):
            tokens = _tokenize(segment, template)
            params = [token for token in tokens if isinstance(token, _Parameter)]
            if any(param.catch_all for param in params) and (len(tokens) != 1 or index != len(segments) - 1):
                raise ValueError(f"route {template!r}: a catch-all parameter must be the whole last segment")
            if len(tokens) == 1 and params and (params[0].optional or params[0].default is not None):
                group = f"g{len(parameters)}"
                regex += f"(?:/(?P<{group}>.*))?" if params[0].catch_all else f"(?:/(?P<{group}>[^/]+))?"
                parameters.append(params[0])
                precedence.append(_CATCH_ALL if params[0].catch_all else _OPTIONAL)
                continue
            regex += "/"
            for token in tokens:
                if isinstance(token, str):
                    regex += re.escape(token)
                else:
                    regex += f"(?P<g{len(parameters)}>{'.*' if token.catch_all else '[^/]+?'})"
                    parameters.append(token)
            precedence.append(_segment_precedence(tokens))
        return cls(template, re.compile(regex + "/?", re.IGNORECASE), tuple(parameters), tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters (URL-decoded) if `path` (relative to the route prefix) matches."""
        found = self._pattern.fullmatch("/" + path.strip("/") if path.strip("/") else "")
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self._parameters):
            raw = found.group(f"g{index}")
            if raw is None:
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = unquote(raw)
            if not all(check(value) for check in parameter.checks):
                return None
            values[parameter.name] = value
        return values


def _segment_precedence(tokens: list[str | _Parameter]) -> int:
    params = [token for token in tokens if isinstance(token, _Parameter)]
    if not params:
        return _LITERAL
    if len(tokens) > 1:
        return _COMPLEX
    if params[0].catch_all:
        return _CATCH_ALL
    return _CONSTRAINED if params[0].checks else _PLAIN


def _tokenize(segment: str, template: str) -> list[str | _Parameter]:
    """Split a segment into literal text and parameters, honouring `{{` and `}}` escapes."""
    tokens: list[str | _Parameter] = []
    literal, position = "", 0
    while position < len(segment):
        pair = segment[position : position + 2]
        if pair in {"{{", "}}"}:
            literal, position = literal + pair[0], position + 2
            continue
        if segment[position] == "}":
            raise ValueError(f"route {template!r}: unbalanced '}}'")
        if segment[position] != "{":
            literal, position = literal + segment[position], position + 1
            continue
        end = position + 1
        body = ""
        while end < len(segment) and (segment[end] != "}" or segment[end : end + 2] == "}}"):
            step = 2 if segment[end : end + 2] in {"{{", "}}"} else 1
            body, end = body + segment[end], end + step
        if end >= len(segment):
            raise ValueError(f"route {template!r}: unbalanced '{{'")
        if literal:
            tokens.append(literal)
            literal = ""
        tokens.append(_parameter(body, template))
        position = end + 1
    if literal:
        tokens.append(literal)
    return tokens


def _parameter(body: str, template: str) -> _Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    body, has_default, default = body.partition("=")
    parts = _split_constraints(body)
    name = parts[0]
    optional = name.endswith("?") or (len(parts) > 1 and parts[-1].endswith("?"))
    if optional:
        parts = [part.removesuffix("?") for part in parts]
        name = parts[0]
    if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
        raise ValueError(f"route {template!r}: {name!r} is not a parameter name")
    checks = tuple(check for check in map(_constraint, parts[1:]) if check is not None)
    return _Parameter(name, checks, optional or catch_all, default if has_default else None, catch_all)


def _split_constraints(body: str) -> list[str]:
    """`id:int:range(1,5)` -> ['id', 'int', 'range(1,5)']; colons inside parentheses stay."""
    parts, depth, current = [], 0, ""
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts

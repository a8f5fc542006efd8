"""The one resolver of ``package.module:attr`` names (user models, data loaders, losses)."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import LandscapeError

__all__ = ["ImportNameError", "import_object", "is_import_name"]


class ImportNameError(LandscapeError):
    """A ``package.module:attr`` name that cannot be resolved.

    Attributes
    ----------
    name : str
        The name as given.
    problem : {"format", "module", "attribute", "callable"}
        What failed: the name's form, importing the module, reaching the attribute, or the
        object is not callable.
    module, attr : str
        The two parts of the name.
    detail : str
        The underlying error (or the type of the object that is not callable).
    """

    def __init__(self, message: str, *, name: str, problem: str, module: str, attr: str,
                 detail: str) -> None:
        super().__init__(message)
        self.name, self.problem, self.module, self.attr = name, problem, module, attr
        self.detail = detail


def is_import_name(text: Any) -> bool:
    """Whether ``text`` has the form ``package.module:attr``."""
    return isinstance(text, str) and ":" in text


def import_object(name: str, *, what: str = "object", require_callable: bool = True) -> Any:
    """Import ``package.module:attr`` (``attr`` may be dotted) and return the object.

    Parameters
    ----------
    name : str
        ``"package.module:attr"``.
    what : str, default="object"
        What the name stands for, in messages (``"model"``, ``"dataset"``, ``"loss"``).
    require_callable : bool, default=True
        Refuse an object that cannot be called.

    Raises
    ------
    ImportNameError
        Naming what failed (callers may reword it from its attributes).
    """
    module, _, attr = name.partition(":")
    base = {"name": name, "module": module, "attr": attr}
    if not module or not attr:
        raise ImportNameError(
            f"the {what} {name!r} must have the form 'package.module:attr' with both parts "
            "non-empty", problem="format", detail="", **base)
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise ImportNameError(
            f"cannot import module {module!r} for {what} {name!r}: {err}; check the name and "
            "that the module is on the Python path", problem="module", detail=str(err),
            **base) from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise ImportNameError(
                f"module {module!r} has no attribute {attr!r} ({what} {name!r}); check the "
                "name after ':'", problem="attribute", detail=str(err), **base) from err
    if require_callable and not callable(obj):
        raise ImportNameError(
            f"the {what} {name!r} names a {type(obj).__name__}, not a function (it cannot be "
            "called)", problem="callable", detail=type(obj).__name__, **base)
    return obj

"""Where a component's tests live: the project's ``test_path_template`` filled in for it, and
the rule that no two components of a project share a test file.

Two children writing one file is how tests were lost on real packages (``click.utils`` and
``click._utils`` both got ``tests/test_click_utils.py``; the second overwrote the first on the
branch), so a collision is refused where components and templates are written, not found out
when a run has already lost the work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

PLACEHOLDERS = (
    "module",
    "module_snake",
    "module_last",
    "module_path",
    "source_path",
    "source_dir",
    "source_stem",
    "source_ext",
)
# The placeholders read from the component's source path.
SOURCE_PLACEHOLDERS = ("{source_path}", "{source_dir}", "{source_stem}", "{source_ext}")
# The default keeps the modules of an ordinary package apart: {module_snake} alone folds
# "click.utils" and "click._utils" (or "pkg.fooBar" and "pkg.foo_bar") into one name, and the
# last dotted part, kept as it is written, tells them apart again. Every file stays directly
# under tests/ with its own base name, since pytest's default import mode cannot collect two
# test files of one base name in different folders.
DEFAULT_TEMPLATE = "tests/test_{module_snake}_{module_last}.py"
TAKEN = "Test file {path} is already the test file of {other}"
NEEDS_SOURCE_PATH = (
    "Component {module_name} has no source_path, which the project's test path template "
    "{{source_path}} needs"
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")


class Named(Protocol):
    module_name: str
    source_path: str | None


def module_snake(module_name: str) -> str:
    """``Shop.Accounts.UserToken`` → ``shop_accounts_user_token``, ``click._utils`` →
    ``click_utils``: CamelCase split, every run of other characters one ``_``, lower case."""
    return _NOT_WORD.sub("_", _CAMEL_BOUNDARY.sub("_", module_name)).strip("_").lower()


def module_last(module_name: str) -> str:
    """The last dotted part, as written: ``click._utils`` → ``_utils``."""
    return module_name.rsplit(".", 1)[-1]


def module_path(module_name: str) -> str:
    """``Shop.Accounts.UserToken`` → ``shop/accounts/user_token``: each dotted part snake-cased
    (as ``module_snake``), joined by ``/``: the path Elixir's and Ruby's conventions give."""
    return "/".join(module_snake(part) or "_" for part in module_name.split("."))


def render(template: str, *, module_name: str, source_path: str | None) -> str | None:
    """The test file ``template`` names for a component; None when the template uses the
    source path (``{source_path}``, ``{source_dir}``, ``{source_stem}``, ``{source_ext}``) and
    the component has none. ``src/utils/format.tsx`` has the dir ``src/utils``, the stem
    ``format`` and the ext ``.tsx``; the dir of a file at the top of the repository is empty,
    and the empty part it leaves (``{source_dir}/x``) is dropped."""
    if source_path is None and any(field in template for field in SOURCE_PLACEHOLDERS):
        return None
    directory, _, file_name = (source_path or "").rpartition("/")
    stem, dot, extension = file_name.rpartition(".")
    if not dot:
        stem, extension = file_name, ""
    rendered = template.format(
        module=module_name,
        module_snake=module_snake(module_name),
        module_last=module_last(module_name),
        module_path=module_path(module_name),
        source_path=source_path or "",
        source_dir=directory,
        source_stem=stem,
        source_ext=f".{extension}" if extension else "",
    )
    if "{source_dir}" in template:
        rendered = "/".join(part for part in rendered.split("/") if part)
    return rendered


def test_file_of(template: str, component: Named) -> str | None:
    return render(template, module_name=component.module_name, source_path=component.source_path)


def first_collision(template: str, components: Iterable[Named]) -> str | None:
    """The refusal for the colliding pair whose module names sort first, naming the first of
    the two as the file's owner; None when every component has a test file of its own."""
    owners: dict[str, list[str]] = {}
    for component in components:
        path = test_file_of(template, component)
        if path is not None:
            owners.setdefault(path, []).append(component.module_name)
    pairs = [(sorted(names)[:2], path) for path, names in owners.items() if len(names) > 1]
    if not pairs:
        return None
    (first, _second), path = min(pairs)
    return TAKEN.format(path=path, other=first)


def collision_with(template: str, component: Named, others: Iterable[Named]) -> str | None:
    """The refusal when ``component``'s test file is already another component's; the other
    named is the first by module name when several hold it."""
    path = test_file_of(template, component)
    if path is None:
        return None
    holders = sorted(
        other.module_name
        for other in others
        if other.module_name != component.module_name and test_file_of(template, other) == path
    )
    return TAKEN.format(path=path, other=holders[0]) if holders else None

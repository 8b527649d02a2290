"""What may reach a command the service hands out: branch names, test files, module names and
the project's command templates.

The commands run on users' machines with ``sh -c``. Any project member can write a session's
state or a component's module name, so every value is checked twice: by the models when it is
stored (the API, the admin and the service all validate there) and by the command builders
when it is used (rows stored before these rules existed). Each check answers the reason a value
is refused, or None; the callers phrase it for their field.

This module imports nothing from the apps, so the models of both apps can use it.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

BRANCH_MAX_LENGTH = 200
TEST_FILE_MAX_LENGTH = 500

# Characters git refuses anywhere in a ref name (git-check-ref-format(1), rules 4, 5 and 10).
_REF_FORBIDDEN = set(" ~^:?*[\\")
# Beyond git's rules: characters that make a name lie on a terminal (bidirectional overrides,
# zero-width joiners) or look like a space.
_UNSHOWABLE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")

_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def branch_name_problem(name: str) -> str | None:
    """Why git would refuse ``name`` as a branch (``git check-ref-format --branch``), or why we
    refuse it on top of git's rules (control, format and space characters, ``@``, ``HEAD``)."""
    if not name:
        return "it is empty"
    if len(name) > BRANCH_MAX_LENGTH:
        return f"it is longer than {BRANCH_MAX_LENGTH} characters"
    if name.startswith("-"):
        return 'it starts with "-"'
    # Valid for git, but "+name" in a push refspec forces the push.
    if name.startswith("+"):
        return 'it starts with "+"'
    for char in name:
        if unicodedata.category(char) in _UNSHOWABLE_CATEGORIES:
            return f"it contains the character U+{ord(char):04X}"
        if char in _REF_FORBIDDEN:
            return f'it contains "{char}"'
    if ".." in name:
        return 'it contains ".."'
    if "@{" in name:
        return 'it contains "@{"'
    if name in ("@", "HEAD"):
        return f"{name} is not a branch name"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return 'it has an empty part between "/"'
    if name.endswith("."):
        return 'it ends with "."'
    for part in name.split("/"):
        if part.startswith("."):
            return 'a part of it starts with "."'
        if part.endswith(".lock"):
            return 'a part of it ends with ".lock"'
    return None


def test_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be a test file: it must be a relative path inside the repository
    made of letters, digits, ``_``, ``.`` and ``-``, with no part that is empty, ``.``,
    ``..``, ``.git`` or that starts with ``-``."""
    if not path:
        return "it is empty"
    if len(path) > TEST_FILE_MAX_LENGTH:
        return f"it is longer than {TEST_FILE_MAX_LENGTH} characters"
    if path.startswith("/"):
        return "it is an absolute path"
    if path.startswith("-"):
        return 'it starts with "-"'
    for part in path.split("/"):
        if part == "":
            return 'it has an empty part between "/"'
        if part in (".", ".."):
            return f'it has a "{part}" part'
        if part.lower() == ".git":
            return "it points into .git"
        if part.startswith("-"):
            return 'a part of it starts with "-"'
        if not _PATH_SEGMENT.fullmatch(part):
            return "use only letters, digits, _, . and - between the / separators"
    return None


def module_name_problem(name: str) -> str | None:
    if MODULE_NAME.fullmatch(name):
        return None
    return (
        "Use only letters, digits, _, . and - (not first), e.g. Shop.Accounts.User; the name "
        "becomes part of a file path and of commands."
    )


# --- command templates -------------------------------------------------------------------

# A stand-in for a placeholder while the template is read as shell: letters only, so that it
# joins whatever word it stands in and cannot be mistaken for shell syntax.
_SENTINEL = "SpawnctlPlaceholderQzx"
_OPERATORS = set(";&|()<>")
# A placeholder may follow an option or variable name and "=": FILE={test_file}, --x={x}.
_ASSIGNMENT_PREFIX = re.compile(r"-{0,2}[A-Za-z_][A-Za-z0-9_.-]*=")
# Commands that read an argument as shell code (or as arithmetic, which bash can make run a
# command): a placeholder handed to one of them would be parsed again.
_REPARSING = frozenset(
    {"eval", "let", "declare", "typeset", "local", "readonly", "export", "source", ".", "alias"}
    | {"trap", "[[", "xargs"}
)
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})
# Commands that run the words after them as a command: what follows is a command name too.
_WRAPPERS = frozenset(
    {"env", "exec", "command", "builtin", "nice", "nohup", "sudo", "doas", "timeout", "time"}
    | {"stdbuf", "ionice", "chrt", "taskset", "setsid", "unbuffer", "xargs", "flock", "su"}
)
REPARSED = (
    "{field} must not be handed to a command that reads it as shell code or arithmetic "
    "(eval, sh -c, let, [[ ]], (( )) ...)."
)
RUNS_CODE = (
    "{field} must not be the argument of an option that runs code "
    "(-c, -e, --eval, -S, --command, --exec ...)."
)
EXPANDED_COMMAND = (
    "The command that receives {field} must be written out, not left to an expansion "
    "($VAR, $(...)): what it runs is only known when it runs."
)


@dataclass
class _Word:
    text: str
    # The index of the simple command (between operators) the word belongs to.
    command: int
    arithmetic: bool = False


class _Unbalanced(ValueError):
    pass


def _skip_nested(text: str, i: int, closer: str) -> int:
    """The index just past the ``closer`` that ends the construct opened just before ``i``
    (a quote, a backtick, ``$(``, ``${`` or a nested parenthesis), following quotes and
    substitutions nested in it the way a POSIX shell does."""
    while i < len(text):
        char = text[i]
        if closer == "'":
            if char == "'":
                return i + 1
            i += 1
        elif char == "\\":
            i += 2
        elif char == closer:
            return i + 1
        elif char == '"' or (char == "'" and closer != '"') or char == "`":
            i = _skip_nested(text, i + 1, char)
        elif text.startswith("$(", i):
            i = _skip_nested(text, i + 2, ")")
        elif text.startswith("${", i):
            i = _skip_nested(text, i + 2, "}")
        elif char == "(" and closer == ")":
            i = _skip_nested(text, i + 1, ")")
        else:
            i += 1
    raise _Unbalanced


def _shell_words(text: str) -> tuple[list[_Word], str]:
    """The top-level words of a one-line shell command, each tagged with its simple command;
    and the comment that ends the line, if any."""
    words: list[_Word] = []
    command, arithmetic, previous = 0, False, ""
    i = 0
    while i < len(text):
        char = text[i]
        if char in " \t":
            i += 1
            continue
        if char in _OPERATORS:
            # "((" opens an arithmetic command, whose words bash evaluates (and an array
            # subscript in them can run a command) up to its closing parenthesis.
            if char == "(" and previous == "(":
                arithmetic = True
            elif char == ")":
                arithmetic = False
            # A redirection ends a word, not the command: `eval >log {x}` still evals {x}.
            if char not in "<>":
                command += 1
            previous = char
            i += 1
            continue
        if char == "#":
            return words, text[i:]
        previous = ""
        start = i
        while i < len(text) and text[i] not in " \t" and text[i] not in _OPERATORS:
            if text[i] == "\\":
                i += 2
            elif text[i] in "'\"`":
                i = _skip_nested(text, i + 1, text[i])
            elif text.startswith("$(", i):
                i = _skip_nested(text, i + 2, ")")
            elif text.startswith("${", i):
                i = _skip_nested(text, i + 2, "}")
            else:
                i += 1
        words.append(_Word(text[start:i], command, arithmetic))
    return words, ""


# Options whose argument a program runs as code: python -c, perl -e, node --eval, env -S,
# su -c, flock -c, script -c, find -exec, gdb --eval-command ... (Claude Code's -p is a prompt).
_CODE_OPTIONS = frozenset(
    {"-c", "-e", "-S", "--eval", "--command", "--exec", "--split-string", "--eval-command"}
    | {"-exec", "-execdir", "-ok", "-okdir", "--init-command", "--execute", "--run"}
)
# A cluster of short options that ends in one of those: python3 -Ic, perl -we, bash -xc.
_CODE_OPTION_CLUSTER = re.compile(r"-[A-Za-z]*[ceS]")
# Programs that run a positional argument as code (a shell command line, a script).
_RUNS_ARGUMENT = frozenset({"ssh", "watch", "awk", "gawk", "mawk", "nawk", "sed", "dc", "parallel"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _unquoted(text: str) -> str | None:
    """``text`` after the shell's quote removal (``'sh'``, ``"eval"``, ``\\eval``, ``s"h"``
    all read as the name they spell), or None when it holds an expansion (``$``, a
    backtick) whose value is only known when the command runs."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            out.append(text[i + 1 : i + 2])
            i += 2
        elif char == "'":
            end = text.index("'", i + 1)
            out.append(text[i + 1 : end])
            i = end + 1
        elif char == '"':
            i += 1
            while text[i] != '"':
                if text[i] in "$`":
                    return None
                if text[i] == "\\" and text[i + 1] in '$`"\\\n':
                    i += 1
                out.append(text[i])
                i += 1
            i += 1
        elif char in "$`":
            return None
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _command_words(words: list[_Word], index: int) -> list[str | None]:
    """The words of ``words[index]``'s simple command before it, quotes removed (None for an
    expansion), leading ``NAME=value`` assignments left out."""
    word = words[index]
    before = [w.text for w in words[:index] if w.command == word.command]
    while before and _ASSIGNMENT.match(before[0]):
        before.pop(0)
    return [_unquoted(text) for text in before]


def _reparses(words: list[_Word], index: int, *, anywhere: bool = False) -> str | None:
    """Why the command holding ``words[index]`` would parse that word again (or run it as
    code), or None; with ``anywhere``, whether any command of the line parses some argument
    again (a value kept in a variable by ``NAME={x}`` could reach it)."""
    word = words[index]
    if anywhere:
        if any(w.arithmetic for w in words):
            return REPARSED
        for later in range(len(words)):
            if reason := _reparses(words, later):
                return reason
        return None
    if word.arithmetic:
        return REPARSED
    before = _command_words(words, index)
    for position, text in enumerate(before):
        if text is None:
            if position == 0 or not before[position - 1] or before[position - 1] in _WRAPPERS:
                return EXPANDED_COMMAND
            continue
        name = text.rsplit("/", 1)[-1]
        # "." runs a file only as a command's name, and is a path anywhere else (find .).
        named = position == 0 or before[position - 1] in _WRAPPERS
        if (name in _REPARSING and (name != "." or named)) or name in _RUNS_ARGUMENT:
            return REPARSED
        if name in _SHELLS and any(
            flag and flag.startswith("-") and not flag.startswith("--") and "c" in flag
            for flag in before[position + 1 :]
        ):
            return REPARSED
    previous = before[-1] if before else None
    if previous is not None and (
        previous in _CODE_OPTIONS or _CODE_OPTION_CLUSTER.fullmatch(previous)
    ):
        return RUNS_CODE
    return None


class _Placeholders(dict):
    """``str.format_map`` values: the sentinel for the placeholder judged, a plain word for
    any other (each is judged on its own call)."""

    def __init__(self, judged: str) -> None:
        super().__init__({judged: _SENTINEL})

    def __missing__(self, name: str) -> str:
        return "other"


def shell_template_problem(template: str, placeholder: str) -> str | None:
    """Why ``template`` would let a value substituted for ``{placeholder}`` be parsed again by
    the shell, or None. The service quotes each value itself, so a placeholder must stand as a
    whole word (or after ``NAME=``), outside quotes, substitutions and comments, and not be
    handed to a command that runs its argument as code (``eval``, ``sh -c``)."""
    field = "{" + placeholder + "}"
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in template):
        return "Write the command on one line, without control characters."
    rendered = template.format_map(_Placeholders(placeholder))
    try:
        words, comment = _shell_words(rendered)
    except _Unbalanced:
        return "The command is not valid shell: a quote, $( or ${ is not closed."
    if _SENTINEL in comment:
        return f"{field} is inside a comment."
    for index, word in enumerate(words):
        if _SENTINEL not in word.text:
            continue
        prefix = word.text[: -len(_SENTINEL)] if word.text.endswith(_SENTINEL) else None
        if (
            word.text.count(_SENTINEL) > 1
            or prefix is None
            or (prefix and not _ASSIGNMENT_PREFIX.fullmatch(prefix))
        ):
            return (
                f"{field} must be a shell word of its own (or follow NAME=), outside quotes, "
                f"$(...) and backticks: the service quotes the value itself, e.g. "
                f"pytest {field}."
            )
        if (
            prefix
            and (option := prefix[:-1])
            and (option in _CODE_OPTIONS or _CODE_OPTION_CLUSTER.fullmatch(option))
        ):
            return RUNS_CODE.format(field=field)
        if reason := _reparses(words, index, anywhere=bool(prefix)):
            return reason.format(field=field)
    return None


COMMAND_LINE_MAX_LENGTH = 1000


def command_line_problem(line: str) -> str | None:
    """Why ``line`` cannot be a command a project runs as it stands (no placeholder: nothing
    from a request is put in it), or None: one line, no control characters, valid shell."""
    if len(line) > COMMAND_LINE_MAX_LENGTH:
        return f"Write the command in at most {COMMAND_LINE_MAX_LENGTH} characters."
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in line):
        return "Write the command on one line, without control characters."
    try:
        _shell_words(line)
    except _Unbalanced:
        return "The command is not valid shell: a quote, $( or ${ is not closed."
    return None


def template_fields(template: str) -> set[str] | None:
    """The placeholders ``template`` uses, or None when it is not a valid format string."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return None

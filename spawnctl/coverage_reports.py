"""Reading coverage reports: coverage.py's JSON, LCOV, Cobertura XML and Go's cover profile,
one reader per format, each giving the same mapping of a file's path (relative to the
repository where it lies in it) to its ``FileCoverage``. A report that is missing or does not
parse reads as None, never as an exception: it is the test run's output, and a broken one means
"no coverage data"."""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.parsers import expat

COVERAGE_PY_JSON = "coverage.py-json"
LCOV = "lcov"
COBERTURA = "cobertura"
GO_COVER = "go-cover"
# A report of one file is kilobytes; one of a whole monorepo a few megabytes. Past this the
# runner does not hold it in memory.
MAX_REPORT_BYTES = 64 * 1024 * 1024
_CONDITIONS = re.compile(r"\((\d+)/(\d+)\)")


@dataclass(frozen=True)
class FileCoverage:
    lines_total: int
    lines_covered: int
    missing_lines: tuple[int, ...]
    # None when the report has no branch data (a run without branch coverage).
    branches_total: int | None = None
    branches_covered: int | None = None


Report = dict[str, FileCoverage]
Reader = Callable[[bytes, Path], "Report | None"]


def normalised(path: str, root: Path) -> str:
    """``path`` as a report names it, relative to ``root`` when it lies in it (absolute paths
    otherwise stay absolute), in ``/`` form without ``.`` or ``..`` parts."""
    path = path.strip()
    if os.path.isabs(path):
        for base in {os.path.normpath(root), os.path.realpath(root)}:
            for candidate in {os.path.normpath(path), os.path.realpath(path)}:
                inside = os.path.relpath(candidate, base)
                if inside != os.pardir and not inside.startswith(os.pardir + os.sep):
                    return Path(inside).as_posix()
        return Path(os.path.normpath(path)).as_posix()
    return posixpath.normpath(Path(path).as_posix())


def find(report: Mapping[str, FileCoverage], source_path: str) -> FileCoverage | None:
    """The entry for ``source_path`` (relative to the repository): by its path, else by the
    longest run of trailing path parts it shares with exactly one entry, one path's parts
    ending the other's (a report made elsewhere, or relative to a source root like ``src/``)."""
    wanted = posixpath.normpath(source_path)
    if wanted in report:
        return report[wanted]
    parts = wanted.split("/")
    best, matches = 0, []
    for key in report:
        other = key.strip("/").split("/")
        shared = min(len(parts), len(other))
        if parts[-shared:] != other[-shared:]:
            continue
        if shared > best:
            best, matches = shared, [key]
        elif shared == best:
            matches.append(key)
    # Two entries as good as each other: guessing would judge the wrong file.
    return report[matches[0]] if len(matches) == 1 else None


def read_coverage_py_json(data: bytes, root: Path) -> Report | None:
    """``coverage json``: per file its summary's statements and covered lines, its list of
    missing lines, and branches when the report's meta says it measured them."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, dict):
        return None
    meta = document.get("meta")
    branches = isinstance(meta, dict) and meta.get("branch_coverage") is True
    report: Report = {}
    for path, entry in files.items():
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            return None
        total, covered = _count(summary.get("num_statements")), _count(summary.get("covered_lines"))
        missing = entry.get("missing_lines", [])
        if total is None or covered is None or not _lines(missing):
            return None
        branches_total = branches_covered = None
        if branches:
            branches_total = _count(summary.get("num_branches"))
            branches_covered = _count(summary.get("covered_branches"))
            if branches_total is None or branches_covered is None:
                return None
        report[normalised(path, root)] = FileCoverage(
            total, covered, tuple(sorted(set(missing))), branches_total, branches_covered
        )
    return _consistent(report)


def read_lcov(data: bytes, root: Path) -> Report | None:
    """LCOV tracefiles: per ``SF:`` record its ``DA`` lines and ``BRDA`` branches, totals from
    ``LF``/``LH`` and ``BRF``/``BRH`` where given. Records of one file (tracefiles joined) are
    combined, their totals counted from the lines and branches."""
    records: dict[str, _LcovRecord] = {}
    current: _LcovRecord | None = None
    seen_record = False
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        tag, _, value = line.partition(":")
        if tag == "SF":
            path = normalised(value, root)
            current = records.get(path)
            if current is None:
                current = records[path] = _LcovRecord()
            else:
                current.repeated = True
        elif line == "end_of_record":
            if current is None:
                return None
            current, seen_record = None, True
        elif current is not None and not current.take(tag, value):
            return None
    # A file cut short (no end_of_record) or one that is not LCOV at all.
    if current is not None or not seen_record:
        return None
    # coverage.py writes no BR lines for a file without branches, even in a branch run.
    branch_run = any(record.branches or "BRF" in record.totals for record in records.values())
    return _consistent({path: record.coverage(branch_run) for path, record in records.items()})


class _LcovRecord:
    def __init__(self) -> None:
        self.hits: dict[int, int] = {}
        self.branches: dict[tuple[str, str, str], bool] = {}
        self.totals: dict[str, int] = {}
        self.repeated = False

    def take(self, tag: str, value: str) -> bool:
        """False when the line is malformed."""
        fields = value.split(",")
        if tag == "DA":
            if len(fields) < 2:
                return False
            line, hits = _count(fields[0]), _int(fields[1])
            if not line or hits is None:
                return False
            self.hits[line] = max(self.hits.get(line, 0), hits)
        elif tag == "BRDA":
            if len(fields) < 4:
                return False
            # The branch's name may hold commas (coverage.py writes "jump to line 7").
            key = (fields[0], fields[1], ",".join(fields[2:-1]))
            taken = fields[-1] not in ("-", "0")
            if fields[-1] != "-" and _int(fields[-1]) is None:
                return False
            self.branches[key] = self.branches.get(key, False) or taken
        elif tag in ("LF", "LH", "BRF", "BRH"):
            count = _count(value)
            if count is None:
                return False
            self.totals[tag] = count
        return True

    def coverage(self, branch_run: bool) -> FileCoverage:
        # Totals as written, unless records of the file were combined or they are absent.
        given = {} if self.repeated else self.totals
        lines_total = given.get("LF", len(self.hits))
        lines_covered = given.get("LH", sum(1 for hits in self.hits.values() if hits > 0))
        missing = tuple(sorted(line for line, hits in self.hits.items() if hits == 0))
        branches_total = branches_covered = None
        if branch_run:
            branches_total = given.get("BRF", len(self.branches))
            branches_covered = given.get("BRH", sum(self.branches.values()))
        return FileCoverage(lines_total, lines_covered, missing, branches_total, branches_covered)


class _Refused(Exception):
    """A DTD of the document's own, where entities are declared: what a billion-laughs or an
    external-entity attack is made of."""


def read_cobertura(data: bytes, root: Path) -> Report | None:
    """Cobertura XML: per ``<class filename>`` its ``<lines>`` (classes of one file, such as a
    Java class and its inner ones, combined by line number), branches from each branch line's
    ``condition-coverage="50% (1/2)"``. A relative filename is resolved against the
    ``<sources>``: the first source under which the file exists in the repository, else the
    first one inside the repository. A document that declares a DTD of its own or an entity
    is refused: the report is a test run's output, not trusted input. A ``<!DOCTYPE>`` that
    only names Cobertura's DTD (gcovr and Cobertura itself write one) is read; the DTD is
    never fetched."""
    parser = expat.ParserCreate()
    sources: list[str] = []
    classes: dict[str, dict[int, tuple[int, tuple[int, int] | None]]] = {}
    stack: list[str] = []
    text: list[str] = []
    current: dict[int, tuple[int, tuple[int, int] | None]] | None = None
    branch_run = False

    def doctype(name: str, system_id: Any, public_id: Any, has_internal_subset: int) -> None:
        if has_internal_subset:
            raise _Refused

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal current, branch_run
        if not stack and name != "coverage":
            raise ValueError("not a Cobertura report")
        stack.append(name)
        if name == "coverage":
            branch_run = (_count(attributes.get("branches-valid")) or 0) > 0
        elif name == "source":
            text.clear()
        elif name == "class":
            current = classes.setdefault(attributes.get("filename", ""), {})
        elif name == "line" and current is not None:
            # Lines listed again under the class's methods are combined with the class's.
            number, hits = _count(attributes.get("number")), _int(attributes.get("hits"))
            if not number or hits is None:
                raise ValueError("a line without its number or hits")
            conditions = None
            match = _CONDITIONS.search(attributes.get("condition-coverage", ""))
            if attributes.get("branch") == "true" and match:
                conditions = (int(match.group(1)), int(match.group(2)))
            before = current.get(number)
            if before is not None:
                # The line as the class that ran it most saw it.
                hits = max(hits, before[0])
                conditions = max((c for c in (conditions, before[1]) if c), default=None)
            current[number] = (hits, conditions)

    def end(name: str) -> None:
        nonlocal current
        stack.pop()
        if name == "source":
            sources.append("".join(text).strip())
        elif name == "class":
            current = None

    def characters(chunk: str) -> None:
        if stack and stack[-1] == "source":
            text.append(chunk)

    # Entities are declared in a DTD's internal subset only (expat loads no external one), so
    # refusing the subset refuses every entity.
    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(data, True)
    except (_Refused, expat.ExpatError, ValueError):
        return None
    report: Report = {}
    for filename, lines in classes.items():
        if not filename:
            return None
        total = len(lines)
        covered = sum(1 for hits, _ in lines.values() if hits > 0)
        missing = tuple(sorted(number for number, (hits, _) in lines.items() if hits == 0))
        conditions = [c for _, c in lines.values() if c is not None]
        branches_total = branches_covered = None
        if conditions or branch_run:
            branches_total = sum(t for _, t in conditions)
            branches_covered = sum(c for c, _ in conditions)
        path = _resolved(filename, sources, root)
        report[path] = FileCoverage(total, covered, missing, branches_total, branches_covered)
    return _consistent(report)


def _resolved(filename: str, sources: list[str], root: Path) -> str:
    if os.path.isabs(filename) or not sources:
        return normalised(filename, root)
    joined = [normalised(os.path.join(root, source, filename), root) for source in sources]
    for path in joined:
        if not os.path.isabs(path) and (root / path).is_file():
            return path
    inside = [path for path in joined if not os.path.isabs(path)]
    return inside[0] if inside else joined[0]


_GO_BLOCK = re.compile(
    r"^(?P<file>.+):(?P<start>\d{1,9})\.\d{1,9},(?P<end>\d{1,9})\.\d{1,9} "
    r"(?P<statements>\d{1,9}) (?P<count>\d{1,19})$"
)
# A block of statements spans a few lines; one spanning more is a profile not to trust.
MAX_GO_BLOCK_LINES = 100_000
_GO_MODULE = re.compile(rb"^\s*module\s+(\S+)", re.M)


def read_go_cover(data: bytes, root: Path) -> Report | None:
    """Go's cover profile (``go test -coverprofile``): after the ``mode:`` line, one block of
    statements per line, ``file.go:startLine.col,endLine.col statements count``. A line is
    covered when a block spanning it ran; files are named by import path, taken relative to
    the repository through its ``go.mod``'s module path. Go's profile has no branch data."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or not lines[0].startswith("mode: "):
        return None
    module = _go_module(root)
    ran: dict[str, set[int]] = {}
    every: dict[str, set[int]] = {}
    for raw in lines[1:]:
        if not raw.strip():
            continue
        block = _GO_BLOCK.match(raw.strip())
        if block is None:
            return None
        start, end = int(block["start"]), int(block["end"])
        if end - start > MAX_GO_BLOCK_LINES:
            return None
        if start < 1 or end < start or not int(block["statements"]):
            continue
        name = block["file"]
        if module and name.startswith(module + "/"):
            name = name[len(module) + 1 :]
        path = normalised(name, root)
        spanned = set(range(start, end + 1))
        every.setdefault(path, set()).update(spanned)
        if int(block["count"]):
            ran.setdefault(path, set()).update(spanned)
    report = {}
    for path, spanned in every.items():
        covered = ran.get(path, set())
        report[path] = FileCoverage(len(spanned), len(covered), tuple(sorted(spanned - covered)))
    return _consistent(report)


def _go_module(root: Path) -> str | None:
    try:
        found = _GO_MODULE.search((root / "go.mod").read_bytes()[:65536])
    except OSError:
        return None
    return found.group(1).decode("utf-8", errors="replace") if found else None


READERS: dict[str, Reader] = {
    COVERAGE_PY_JSON: read_coverage_py_json,
    LCOV: read_lcov,
    COBERTURA: read_cobertura,
    GO_COVER: read_go_cover,
}


def read_report(path: Path, report_format: str, root: Path) -> Report | None:
    """The report at ``path`` in ``report_format``; None when it is missing, too large, of a
    format no reader knows, or does not parse."""
    reader = READERS.get(report_format)
    if reader is None:
        return None
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return reader(data, root)


def _consistent(report: Report) -> Report | None:
    """``report``, unless it counts more covered than there are: a report to distrust whole
    (and one the server would refuse)."""
    for entry in report.values():
        if entry.lines_covered > entry.lines_total:
            return None
        if (entry.branches_covered or 0) > (entry.branches_total or 0):
            return None
    return report


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _count(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and number >= 0 else None


def _lines(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value
    )

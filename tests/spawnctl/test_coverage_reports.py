"""Reading coverage reports: each format's reader on a real report of the sample (see
fixtures/coverage/make.sh), the paths they name, and broken reports read as no report."""

from __future__ import annotations

from pathlib import Path

import pytest

from spawnctl import coverage_reports
from spawnctl.coverage_reports import (
    COBERTURA,
    COVERAGE_PY_JSON,
    LCOV,
    FileCoverage,
    find,
    normalised,
    read_cobertura,
    read_coverage_py_json,
    read_go_cover,
    read_lcov,
    read_report,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "coverage"
SAMPLE = FIXTURES / "sample"
PRICING = "src/shop/pricing.py"
# The sample's checks take price()'s member branch only and never call refund().
MEASURED = FileCoverage(
    lines_total=8,
    lines_covered=4,
    missing_lines=(9, 13, 14, 15),
    branches_total=4,
    branches_covered=1,
)
EMPTY_MODULE = FileCoverage(0, 0, (), 0, 0)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "report_format", "expected"),
    [
        ("coverage.json", COVERAGE_PY_JSON, MEASURED),
        ("coverage-lines.json", COVERAGE_PY_JSON, FileCoverage(8, 4, (9, 13, 14, 15))),
        ("coverage.lcov", LCOV, MEASURED),
        ("coverage.xml", COBERTURA, MEASURED),
    ],
)
def test_each_reader_reads_its_real_report_of_the_sample(name, report_format, expected):
    report = read_report(FIXTURES / name, report_format, SAMPLE)

    assert report is not None
    assert find(report, PRICING) == expected
    assert len(report) == 2  # the module and the package's empty __init__.py


@pytest.mark.parametrize(
    ("name", "report_format"),
    [("coverage.json", COVERAGE_PY_JSON), ("coverage.lcov", LCOV)],
)
def test_paths_relative_to_the_run_are_relative_to_the_repository(name, report_format):
    report = read_report(FIXTURES / name, report_format, SAMPLE)
    # A file with no branches in a branch run has 0 of 0, not "no branch data".
    assert report == {PRICING: MEASURED, "src/shop/__init__.py": EMPTY_MODULE}


def test_a_cobertura_report_made_elsewhere_is_matched_by_the_path_it_ends_with(tmp_path):
    # The fixture's <source> is the absolute path of the folder it was made in.
    report = read_cobertura(fixture("coverage.xml"), tmp_path)

    assert report is not None
    assert all(key.endswith(("/src/shop/pricing.py", "/src/shop/__init__.py")) for key in report)
    assert find(report, PRICING) == MEASURED
    assert find(report, "src/shop/__init__.py") == EMPTY_MODULE


def _cobertura(sources: list[str], filename: str) -> bytes:
    listed = "".join(f"<source>{source}</source>" for source in sources)
    return (
        '<?xml version="1.0" ?><coverage branches-valid="0">'
        f"<sources>{listed}</sources><packages><package><classes>"
        f'<class name="pricing.py" filename="{filename}"><methods/><lines>'
        '<line number="1" hits="1"/><line number="2" hits="0"/>'
        "</lines></class></classes></package></packages></coverage>"
    ).encode()


def test_cobertura_filenames_are_resolved_against_the_source_holding_the_file(tmp_path):
    (tmp_path / "src" / "shop").mkdir(parents=True)
    (tmp_path / "src" / "shop" / "pricing.py").write_text("")
    document = _cobertura([str(tmp_path / "lib"), str(tmp_path / "src")], "shop/pricing.py")

    assert read_cobertura(document, tmp_path) == {PRICING: FileCoverage(2, 1, (2,))}
    # No source holds it: the first source inside the repository; a relative one too.
    assert set(read_cobertura(document, tmp_path / "elsewhere") or {}) == {
        str(tmp_path / "lib" / "shop" / "pricing.py")
    }
    assert set(read_cobertura(_cobertura(["/away", "src"], "shop/x.py"), tmp_path) or {}) == {
        "src/shop/x.py"
    }
    # An absolute filename needs no source.
    absolute = _cobertura([], str(tmp_path / "src" / "shop" / "pricing.py"))
    assert set(read_cobertura(absolute, tmp_path) or {}) == {PRICING}


def test_cobertura_counts_a_files_lines_once_across_its_classes_and_methods(tmp_path):
    # A Java-style report: the file's class and its inner class, lines repeated under methods.
    document = b"""<coverage><sources><source>.</source></sources><packages><package><classes>
      <class name="User" filename="User.java"><methods><method name="a"><lines>
          <line number="3" hits="1"/></lines></method></methods>
        <lines><line number="3" hits="1" branch="true" condition-coverage="100% (2/2)"/>
          <line number="4" hits="2"/></lines></class>
      <class name="User$Inner" filename="User.java"><methods/>
        <lines><line number="4" hits="0"/><line number="9" hits="0"/>
          <line number="3" hits="1" branch="true" condition-coverage="50% (1/2)"/></lines></class>
    </classes></package></packages></coverage>"""

    assert read_cobertura(document, tmp_path) == {"User.java": FileCoverage(3, 2, (9,), 2, 2)}


def test_lcov_totals_are_counted_from_the_lines_and_branches_when_not_given():
    lines = fixture("coverage.lcov").decode().splitlines()
    bare = "\n".join(line for line in lines if line.split(":")[0] not in ("LF", "LH", "BRF", "BRH"))

    assert read_lcov(bare.encode(), SAMPLE) == read_lcov(fixture("coverage.lcov"), SAMPLE)


def test_lcov_records_of_one_file_are_combined():
    first = b"SF:a.py\nDA:1,1\nDA:2,0\nBRDA:1,0,0,1\nBRDA:1,0,1,-\nLF:2\nLH:1\nend_of_record\n"
    second = b"SF:./a.py\nDA:2,3\nDA:5,0\nBRDA:1,0,1,2\nLF:2\nLH:1\nend_of_record\n"

    assert read_lcov(first + second, Path("/repo")) == {"a.py": FileCoverage(3, 2, (5,), 2, 2)}


def test_a_lines_only_lcov_report_has_no_branch_data():
    assert read_lcov(b"SF:a.py\nDA:1,1\nDA:2,0\nLF:2\nLH:1\nend_of_record\n", Path("/r")) == {
        "a.py": FileCoverage(2, 1, (2,))
    }


def test_a_json_report_without_branch_coverage_has_no_branch_data_even_if_counted():
    document = fixture("coverage.json").replace(
        b'"branch_coverage": true', b'"branch_coverage": false'
    )
    report = read_coverage_py_json(document, SAMPLE)
    assert report is not None
    assert report[PRICING] == FileCoverage(8, 4, (9, 13, 14, 15))


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE coverage [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<coverage><sources><source>&b;</source></sources><packages/></coverage>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE coverage [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<coverage><sources><source>&secret;</source></sources><packages/></coverage>"""


def _truncated(name: str) -> bytes:
    data = fixture(name)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (read_coverage_py_json, b""),
        (read_coverage_py_json, _truncated("coverage.json")),
        (read_coverage_py_json, fixture("coverage.lcov")),
        (read_coverage_py_json, b'{"files": [1, 2]}'),
        (read_coverage_py_json, b'{"files": {"a.py": {"summary": {"num_statements": -1}}}}'),
        (read_coverage_py_json, b'{"files": {"a.py": {"summary": {"num_statements": 1}}}}'),
        (read_coverage_py_json, b"[" * 100_000),
        (
            read_coverage_py_json,
            b'{"files": {"a.py": {"summary": {"num_statements": 1, "covered_lines": 0},'
            b' "missing_lines": ["1"]}}}',
        ),
        (
            read_coverage_py_json,
            b'{"files": {"a.py": {"summary": {"num_statements": 1, "covered_lines": 2},'
            b' "missing_lines": []}}}',
        ),
        (
            read_coverage_py_json,
            b'{"meta": {"branch_coverage": true}, "files": {"a.py": {"summary":'
            b' {"num_statements": 1, "covered_lines": 1}, "missing_lines": []}}}',
        ),
        (read_lcov, b""),
        (read_lcov, b"SF:a.py\nDA:1,1\nLF:1\nLH:2\nend_of_record\n"),
        (read_lcov, b"SF:a.py\nDA:1,1\nBRF:1\nBRH:2\nend_of_record\n"),
        (read_lcov, _truncated("coverage.lcov")),
        (read_lcov, fixture("coverage.json")),
        (read_lcov, fixture("coverage.xml")),
        (read_lcov, b"SF:a.py\nDA:one,1\nend_of_record\n"),
        (read_lcov, b"SF:a.py\nDA:1\nend_of_record\n"),
        (read_lcov, b"end_of_record\n"),
        (read_cobertura, b""),
        (read_cobertura, _truncated("coverage.xml")),
        (read_cobertura, fixture("coverage.json")),
        (read_cobertura, b"<html><body>not a report</body></html>"),
        (
            read_cobertura,
            b'<coverage><packages><package><classes><class filename="a.py"><lines><line'
            b' number="x" hits="1"/></lines></class></classes></package></packages></coverage>',
        ),
        (
            read_cobertura,
            b'<coverage><packages><package><classes><class name="x"><lines/>'
            b"</class></classes></package></packages></coverage>",
        ),
        (
            read_cobertura,
            b'<coverage><packages><package><classes><class filename="a.py"><lines><line'
            b' number="1" hits="1" branch="true" condition-coverage="150% (3/2)"/></lines>'
            b"</class></classes></package></packages></coverage>",
        ),
        (read_cobertura, BILLION_LAUGHS),
        (read_cobertura, EXTERNAL_ENTITY),
        (
            read_cobertura,
            BILLION_LAUGHS.decode()
            .replace('"1.0"?>', '"1.0" encoding="utf-16"?>')
            .encode("utf-16"),
        ),
    ],
)
def test_a_broken_report_reads_as_none(reader, data):
    assert reader(data, SAMPLE) is None


GO = FIXTURES / "go"


def test_gos_cover_profile_is_read_by_line_relative_to_the_module():
    report = read_go_cover((GO / "cover.out").read_bytes(), GO)

    assert report == {
        "store/cache.go": FileCoverage(
            lines_total=11, lines_covered=4, missing_lines=(14, 15, 19, 20, 21, 22, 23)
        )
    }
    # Go's profile has no branch data.
    assert report["store/cache.go"].branches_total is None
    assert coverage_reports.READERS["go-cover"] is read_go_cover


def test_a_go_profile_without_its_go_mod_keeps_the_import_path_found_by_its_end(tmp_path):
    report = read_go_cover((GO / "cover.out").read_bytes(), tmp_path)

    assert set(report) == {"example.com/shop/store/cache.go"}
    assert (
        coverage_reports.find(report, "store/cache.go") == report["example.com/shop/store/cache.go"]
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"example.com/shop/store/cache.go:10.45,11.21 1 1\n",  # no mode line
        b"mode: set\nnot a block\n",
        b"mode: set\na.go:10.45,11.21 one 1\n",
        b"mode: set\na.go:10.45 1 1\n",
        b"mode: set\na.go:" + b"9" * 5000 + b".1,1.1 1 1\n",  # int() would refuse it
        b"mode: set\na.go:1.1,30000000.1 1 1\n",  # thirty million lines held in memory
        fixture("coverage.lcov"),
    ],
)
def test_a_broken_go_profile_reads_as_none(data):
    assert read_go_cover(data, GO) is None


def test_go_blocks_without_statements_or_backwards_count_nothing():
    data = b"mode: count\na.go:3.1,4.2 0 5\na.go:9.1,7.2 1 1\na.go:5.1,5.9 1 0\n"

    assert read_go_cover(data, GO) == {"a.go": FileCoverage(1, 0, (5,))}


def test_a_missing_too_large_or_unknown_report_reads_as_none(tmp_path, monkeypatch):
    assert read_report(tmp_path / "absent.json", COVERAGE_PY_JSON, tmp_path) is None
    assert read_report(FIXTURES / "coverage.json", "jacoco", SAMPLE) is None
    assert read_report(FIXTURES / "coverage.json", COVERAGE_PY_JSON, SAMPLE) is not None
    monkeypatch.setattr(coverage_reports, "MAX_REPORT_BYTES", 1000)
    assert read_report(FIXTURES / "coverage.json", COVERAGE_PY_JSON, SAMPLE) is None


def test_report_paths_are_normalised_relative_to_the_repository(tmp_path):
    assert normalised(str(tmp_path / "src" / "a.py"), tmp_path) == "src/a.py"
    assert normalised("./src/../src/a.py", tmp_path) == "src/a.py"
    assert normalised("/elsewhere/src/a.py", tmp_path) == "/elsewhere/src/a.py"
    assert normalised(str(tmp_path) + "-other/a.py", tmp_path) == f"{tmp_path}-other/a.py"


def test_a_repository_reached_through_a_symlink_still_holds_its_files(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert normalised(str(tmp_path / "real" / "a.py"), tmp_path / "link") == "a.py"


ONE = FileCoverage(1, 1, ())
TWO = FileCoverage(2, 2, ())


@pytest.mark.parametrize(
    ("keys", "source_path", "found"),
    [
        ({"src/shop/pricing.py": ONE, "shop/pricing.py": TWO}, "src/shop/pricing.py", ONE),
        ({"/ci/build/src/shop/pricing.py": ONE}, "src/shop/pricing.py", ONE),
        ({"shop/pricing.py": ONE}, "src/shop/pricing.py", ONE),
        ({"shop/pricing.py": ONE}, "./src/shop/pricing.py", ONE),
        # The entry sharing the most trailing parts is the one.
        ({"/a/src/shop/pricing.py": ONE, "shop/pricing.py": TWO}, "src/shop/pricing.py", ONE),
        # Two as good as each other, or none sharing whole parts: not guessed.
        ({"/a/shop/pricing.py": ONE, "/b/shop/pricing.py": TWO}, "shop/pricing.py", None),
        ({"src/other/pricing.py": ONE}, "src/shop/pricing.py", None),
        ({"src/shop/xpricing.py": ONE}, "src/shop/pricing.py", None),
        ({}, "src/shop/pricing.py", None),
    ],
)
def test_a_source_path_is_found_by_its_path_else_by_the_path_it_ends_with(keys, source_path, found):
    assert find(keys, source_path) == found


def test_a_doctype_naming_coberturas_dtd_is_read_and_the_dtd_never_fetched(tmp_path):
    # As gcovr writes it; a fetch of the DTD would fail here (no network) or hang.
    document = _cobertura(["."], "a.c").replace(
        b"?><coverage",
        b"?><!DOCTYPE coverage SYSTEM 'http://cobertura.sourceforge.net/xml/coverage-04.dtd'>"
        b"<coverage",
    )
    assert read_cobertura(document, tmp_path) == {"a.c": FileCoverage(2, 1, (2,))}

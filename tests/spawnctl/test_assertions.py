"""The assertion check: which test functions of a Python file assert nothing, read from its
syntax tree."""

from __future__ import annotations

import textwrap

import pytest

from spawnctl.assertions import assertionless_tests


def check(source: str) -> list[str] | None:
    return assertionless_tests(textwrap.dedent(source))


@pytest.mark.parametrize(
    ("source", "without"),
    [
        pytest.param("def test_a():\n    assert 1 + 1 == 2\n", [], id="assert"),
        pytest.param("def test_a():\n    print('ran')\n", ["test_a"], id="only a print"),
        pytest.param("def test_a():\n    pass\n", ["test_a"], id="empty"),
        pytest.param(
            """
            import pytest
            def test_a():
                with pytest.raises(ValueError):
                    int("x")
            """,
            [],
            id="pytest.raises in a with",
        ),
        pytest.param(
            """
            import pytest
            def test_a():
                with pytest.warns(UserWarning):
                    warn()
            def test_b():
                if broken():
                    pytest.fail("broken")
            def test_c():
                pytest.skip("not here")
            """,
            ["test_c"],
            id="pytest.warns and pytest.fail, not pytest.skip",
        ),
        pytest.param(
            """
            import pytest as pt
            from pytest import raises as must_raise
            def test_a():
                with pt.raises(KeyError):
                    {}["x"]
            def test_b():
                with must_raise(KeyError):
                    {}["x"]
            def test_c():
                other.raises(KeyError)
            """,
            ["test_c"],
            id="pytest under another name",
        ),
        pytest.param(
            """
            import unittest
            class TestUser(unittest.TestCase):
                def test_name(self):
                    self.assertEqual(user().name, "ada")
                def test_nothing(self):
                    user()
                def helper(self):
                    pass
            """,
            ["TestUser.test_nothing"],
            id="self.assertEqual in a class",
        ),
        pytest.param(
            """
            def test_called(mock):
                run(mock)
                mock.save.assert_called_once_with(1)
            def test_page(page):
                expect(page.title()).to_equal("Shop")
            def test_playwright(page):
                expect(page).to_have_title("Shop")
            """,
            [],
            id="mock's assert_* and expect(...)",
        ),
        pytest.param(
            """
            def test_outer():
                def helper():
                    assert True
                helper
            def test_lambda():
                check = lambda: self.assertTrue(True)
            def test_class():
                class Inner:
                    def method(self):
                        assert True
            """,
            ["test_outer", "test_lambda", "test_class"],
            id="a nested def's assertion is not the test's",
        ),
        pytest.param(
            """
            async def test_a(client):
                response = await client.get("/")
                assert response.status == 200
            async def test_b(client):
                await client.get("/")
            class TestApi:
                async def test_c(self, client):
                    async with client:
                        for _ in range(2):
                            if True:
                                try:
                                    self.assertIn("x", await client.text())
                                finally:
                                    pass
            """,
            ["test_b"],
            id="async tests, assertions deep in statements",
        ),
        pytest.param(
            """
            def test_a():
                assert False
            def test_a():
                print("the second definition is the one that runs")
            def helper_test():
                pass
            class Helper:
                def test_x(self):
                    pass
            class TestOuter:
                class TestInner:
                    def test_y(self):
                        pass
            """,
            ["test_a"],
            id="what is and is not a test function",
        ),
    ],
)
def test_the_tests_without_an_assertion_are_named(source, without):
    assert check(source) == without


def test_a_file_that_does_not_parse_names_none():
    assert check("def test_a(:\n    assert True\n") is None
    assert assertionless_tests(b"def test_a():\x00\n") is None
    assert check("def test_a():\n    x = 1" + " + 1" * 100_000 + "\n") is None  # too deep


def test_a_file_is_read_in_its_declared_encoding():
    source = "# -*- coding: latin-1 -*-\ndef test_é():\n    print('é')\n".encode("latin-1")
    assert assertionless_tests(source) == ["test_é"]

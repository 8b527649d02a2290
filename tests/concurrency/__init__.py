import pytest

# The race scenarios assert in a helper module that the PostgreSQL tests and the SQLite-file
# runner share; rewriting its asserts keeps pytest's detailed failure messages.
pytest.register_assert_rewrite("tests.concurrency.races", "tests.concurrency.lease_races")

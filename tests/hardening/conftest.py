"""The API's and the admin's clients, for hardening tests that call either door."""

from tests.admin.conftest import staff, staff_client, superuser_client  # noqa: F401
from tests.api.conftest import anonymous, api, unchanged_db  # noqa: F401

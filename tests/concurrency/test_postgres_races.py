"""Concurrent clients on PostgreSQL: exactly one child per component whatever the number of
simultaneous spawns, and exactly one applied report per interaction.

The threads need their own connections and must see each other's commits, so these tests run
outside a test transaction. The in-memory SQLite test database cannot host them (its shared
cache answers a second writer "database table is locked" at once instead of waiting);
``test_sqlite_file_races.py`` runs the same scenarios on a SQLite file.
"""

from tests.concurrency import races

ROUNDS = 5

pytestmark = races.POSTGRES_ONLY


def test_simultaneous_spawns_leave_one_child_per_component_and_agree():
    for _ in range(ROUNDS):
        races.spawn_race()


def test_spawns_through_every_door_at_once_agree():
    for _ in range(ROUNDS):
        races.spawn_doors_race()


def test_simultaneous_commands_and_reports_apply_once_through_a_whole_workflow():
    for _ in range(2):
        races.workflow_race()


def test_simultaneous_creates_never_give_two_components_one_test_file():
    for _ in range(2):
        races.shared_test_file_race()

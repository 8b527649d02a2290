"""Concurrent claimers, spawners, retries and cancels of one context on PostgreSQL: no child
handed out twice, the child cap never exceeded, one child per component, and never an active
child under a cancelled parent. Outside a test transaction, for the reasons given in
test_postgres_races.py; ``test_sqlite_file_races.py`` runs the same scenarios on a SQLite file.
"""

from tests.concurrency import lease_races, races

pytestmark = races.POSTGRES_ONLY


def test_simultaneous_claimers_never_get_the_same_child():
    for _ in range(3):
        lease_races.claims_race_plain()


def test_claimers_take_stalled_children_and_leave_busy_ones():
    for _ in range(3):
        lease_races.claims_race_with_stalled_and_busy_children()


def test_claimers_never_hold_more_children_than_the_cap():
    for _ in range(2):
        lease_races.capped_claims_race_plain()


def test_the_cap_counts_other_runners_live_leases_and_not_expired_ones():
    for _ in range(2):
        lease_races.capped_claims_race_with_stalled_and_busy_children()


def test_simultaneous_spawn_missing_calls_create_each_missing_child_once_and_agree():
    for _ in range(5):
        lease_races.spawn_missing_race()


def test_a_spawn_sent_with_the_parents_cancel_leaves_no_active_child():
    for _ in range(20):
        lease_races.spawn_cancel_race()


def test_a_spawn_missing_sent_with_the_parents_cancel_leaves_no_active_child():
    for _ in range(20):
        lease_races.spawn_missing_cancel_race()


def test_retries_sent_with_the_parents_cancel_leave_no_active_child():
    for _ in range(20):
        lease_races.retry_cancel_race()


def test_runners_driving_a_run_hand_out_no_agent_step_past_its_budget():
    # Without the context's row lock taken first, about one round in four fails.
    for _ in range(8):
        lease_races.budget_race()


def test_the_kept_order_of_children_is_never_left_stale_by_a_concurrent_change():
    for _ in range(5):
        lease_races.child_order_race()

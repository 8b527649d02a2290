import django.db.models.deletion
from django.db import migrations, models

# The triggers that forget a session's ChildOrder (its children's ids in spawn order) on every
# write that could move it: a child inserted or deleted, a child given another parent,
# component, creation time or id, a component given another priority or name. Written out
# here, not imported: a migration must not change when the code does.
#
# On PostgreSQL each trigger first takes a KEY SHARE lock on the parents' rows: a ChildOrder
# is written only under its parent's row lock (FOR UPDATE), so a change that commits while
# one is being written waits for it and then forgets it, and one that came first makes the
# writer wait and read the change. (The child's foreign key is checked at commit, too late
# to give that order.) SQLite runs one writer at a time.
FORGET = "DELETE FROM sessions_app_childorder WHERE parent_id"
CHILD_MOVED = (
    "OLD.id IS NOT NEW.id OR OLD.session_id IS NOT NEW.session_id"
    " OR OLD.component_id IS NOT NEW.component_id OR OLD.created_at IS NOT NEW.created_at"
)
ORDER_MOVED = "OLD.priority IS NOT NEW.priority OR OLD.name IS NOT NEW.name"
PARENTS_OF_COMPONENT = (
    "SELECT session_id FROM sessions_app_session"
    " WHERE component_id = NEW.id AND session_id IS NOT NULL"
)

SQLITE = [
    f"""CREATE TRIGGER child_order_on_insert AFTER INSERT ON sessions_app_session
WHEN NEW.session_id IS NOT NULL
BEGIN {FORGET} = NEW.session_id; END""",
    f"""CREATE TRIGGER child_order_on_update
AFTER UPDATE OF id, session_id, component_id, created_at ON sessions_app_session
WHEN (OLD.session_id IS NOT NULL OR NEW.session_id IS NOT NULL) AND ({CHILD_MOVED})
BEGIN {FORGET} IN (OLD.session_id, NEW.session_id); END""",
    f"""CREATE TRIGGER child_order_on_delete AFTER DELETE ON sessions_app_session
WHEN OLD.session_id IS NOT NULL
BEGIN {FORGET} = OLD.session_id; END""",
    f"""CREATE TRIGGER child_order_on_component AFTER UPDATE OF priority, name
ON components_app_component WHEN {ORDER_MOVED}
BEGIN {FORGET} IN ({PARENTS_OF_COMPONENT}); END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS child_order_on_insert",
    "DROP TRIGGER IF EXISTS child_order_on_update",
    "DROP TRIGGER IF EXISTS child_order_on_delete",
    "DROP TRIGGER IF EXISTS child_order_on_component",
]


def _pg_function(name, parents):
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM sessions_app_session WHERE id IN ({parents}) FOR KEY SHARE;
  {FORGET} IN ({parents});
  RETURN NULL;
END $$"""


POSTGRESQL = [
    # Inserts and deletes once per statement (a spawn inserts thousands of children at once).
    _pg_function(
        "child_order_inserted", "SELECT session_id FROM inserted WHERE session_id IS NOT NULL"
    ),
    _pg_function(
        "child_order_deleted", "SELECT session_id FROM deleted WHERE session_id IS NOT NULL"
    ),
    _pg_function("child_order_moved", "OLD.session_id, NEW.session_id"),
    _pg_function("child_order_reordered", PARENTS_OF_COMPONENT),
    """CREATE TRIGGER child_order_on_insert AFTER INSERT ON sessions_app_session
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION child_order_inserted()""",
    """CREATE TRIGGER child_order_on_delete AFTER DELETE ON sessions_app_session
REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION child_order_deleted()""",
    f"""CREATE TRIGGER child_order_on_update
AFTER UPDATE OF id, session_id, component_id, created_at ON sessions_app_session
FOR EACH ROW WHEN ((OLD.session_id IS NOT NULL OR NEW.session_id IS NOT NULL)
  AND ({CHILD_MOVED.replace(" IS NOT ", " IS DISTINCT FROM ")}))
EXECUTE FUNCTION child_order_moved()""",
    f"""CREATE TRIGGER child_order_on_component AFTER UPDATE OF priority, name
ON components_app_component FOR EACH ROW
WHEN ({ORDER_MOVED.replace(" IS NOT ", " IS DISTINCT FROM ")})
EXECUTE FUNCTION child_order_reordered()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS child_order_on_insert ON sessions_app_session",
    "DROP TRIGGER IF EXISTS child_order_on_update ON sessions_app_session",
    "DROP TRIGGER IF EXISTS child_order_on_delete ON sessions_app_session",
    "DROP TRIGGER IF EXISTS child_order_on_component ON components_app_component",
    "DROP FUNCTION IF EXISTS child_order_inserted()",
    "DROP FUNCTION IF EXISTS child_order_deleted()",
    "DROP FUNCTION IF EXISTS child_order_moved()",
    "DROP FUNCTION IF EXISTS child_order_reordered()",
]


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def add_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise RuntimeError(
            f"ChildOrder's triggers are written for SQLite and PostgreSQL, not {vendor}"
        )
    _run(schema_editor, SQLITE if vendor == "sqlite" else POSTGRESQL)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    _run(schema_editor, SQLITE_DROP if vendor == "sqlite" else POSTGRESQL_DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("components_app", "0014_go_cover_report_format"),
        ("sessions_app", "0011_verification_mutation"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChildOrder",
            fields=[
                (
                    "parent",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="sessions_app.session",
                    ),
                ),
                ("ids", models.TextField(blank=True)),
            ],
        ),
        migrations.RunPython(add_triggers, drop_triggers),
    ]

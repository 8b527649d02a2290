"""An interaction's admin page: its shell command collapsed under its first line, its
metadata and result shown as indented JSON, nothing editable."""

from sessions_app import services


def test_a_git_steps_forty_lines_collapse_under_the_first(superuser_client, scope, context_session):
    interaction, _ = services.next_command(scope=scope, session_id=context_session.pk)
    assert interaction.command["command"].count("\n") > 10

    html = superuser_client.get(
        f"/admin/sessions_app/interaction/{interaction.pk}/change/"
    ).content.decode()

    assert "<details><summary><code>set -e</code> …</summary>" in html
    assert "<summary>3 keys</summary>" in html  # branch_name, base_branch, repository_lock
    assert '<span class="muted">pending</span>' in html
    assert "<textarea" not in html

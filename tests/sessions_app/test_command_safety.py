"""What the service hands out runs on users' machines: hostile values, under a real shell.

Any project member can write a session's state, a component's module name or (in the admin)
a project's templates. Each value that reaches a command is either refused where it is
stored (a 400 naming the field), refused where it is used (a 422, for rows stored before the
rules), or, when it is a name git accepts, passed so that the shell cannot read it as code.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from django.core.exceptions import ValidationError

from components_app.models import Component, Project
from core import safety
from core.errors import InvalidInput, StepError
from sessions_app import services
from sessions_app.models import Interaction, Session, SessionStatus
from sessions_app.workflows import conventions
from tests.api.conftest import client_for
from tests.factories import make_child, make_component, make_context, make_context_session
from tests.sessions_app.test_commands_run_for_real import Client, git, make_workspace
from tests.sessions_app.workflow_driver import drive_to_end, step_once

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

MARK = "PWNED"

# Branch names git accepts, full of shell syntax: they must reach git as they are.
BRANCHES_GIT_ACCEPTS = [
    "$(touch${IFS}PWNED)",
    "`touch${IFS}PWNED`",
    "x;touch${IFS}PWNED",
    "x&&touch${IFS}PWNED|x",
    "x'$(touch${IFS}PWNED)'",
    'x"$(touch${IFS}PWNED)"',
    "x>PWNED",
]

# Branch names refused, with the reason given.
REFUSED_BRANCHES = [
    ("--receive-pack=touch${IFS}PWNED", 'it starts with "-"'),
    ("--orphan=x", 'it starts with "-"'),
    ("-b", 'it starts with "-"'),
    # A valid git branch name, but "+main" in a push refspec forces the push.
    ("+main", 'it starts with "+"'),
    ("+refs/heads/main", 'it starts with "+"'),
    ("a..b", 'it contains ".."'),
    ("refs/heads/../main", 'it contains ".."'),
    ("a\nb", "it contains the character U+000A"),
    ("a\x1b[2Jb", "it contains the character U+001B"),
    ("a\u202eb", "it contains the character U+202E"),
    ("a b", "it contains the character U+0020"),
    ("a~1", 'it contains "~"'),
    ("a^", 'it contains "^"'),
    ("a:b", 'it contains ":"'),
    ("a?", 'it contains "?"'),
    ("a*", 'it contains "*"'),
    ("a[b", 'it contains "["'),
    ("a\\b", 'it contains "\\"'),
    ("a@{1}", 'it contains "@{"'),
    ("@", "@ is not a branch name"),
    ("HEAD", "HEAD is not a branch name"),
    ("x.lock", 'a part of it ends with ".lock"'),
    ("a/b.lock/c", 'a part of it ends with ".lock"'),
    ("x/", 'it has an empty part between "/"'),
    ("/x", 'it has an empty part between "/"'),
    ("a//b", 'it has an empty part between "/"'),
    ("x.", 'it ends with "."'),
    (".x", 'a part of it starts with "."'),
    ("a/.b", 'a part of it starts with "."'),
    ("b" * 201, "it is longer than 200 characters"),
]

PATH_CHARACTERS = "use only letters, digits, _, . and - between the / separators"
REFUSED_TEST_FILES = [
    ("--junitxml=PWNED", 'it starts with "-"'),
    ("-p", 'it starts with "-"'),
    ("/etc/passwd", "it is an absolute path"),
    ("../PWNED.py", 'it has a ".." part'),
    ("tests/../../PWNED.py", 'it has a ".." part'),
    ("./tests/x.py", 'it has a "." part'),
    ("tests//x.py", 'it has an empty part between "/"'),
    ("tests/", 'it has an empty part between "/"'),
    ("tests/-x.py", 'a part of it starts with "-"'),
    (".git/hooks/pre-commit", "it points into .git"),
    ("a/.GIT/config", "it points into .git"),
    ("tests/$(touch PWNED).py", PATH_CHARACTERS),
    ("tests/`touch PWNED`.py", PATH_CHARACTERS),
    ("tests/x.py;touch PWNED", PATH_CHARACTERS),
    ("tests/'q'.py", PATH_CHARACTERS),
    ('tests/"q".py', PATH_CHARACTERS),
    ("tests/a b.py", PATH_CHARACTERS),
    ("tests/x.py\ntouch PWNED", PATH_CHARACTERS),
    ("tests/x.py::test_one", PATH_CHARACTERS),
    ("tests/" + "x" * 500, "it is longer than 500 characters"),
]


def url(session, suffix=""):
    return f"/api/sessions/{session.pk}/{suffix}"


def branch_error(reason):
    return f'state["branch_name"] is not a valid git branch name: {reason}.'


def path_error(reason):
    return f'state["test_file"] must be a relative path inside the repository: {reason}.'


def nothing_ran(root):
    return not [path for path in root.rglob(MARK + "*")]


# --- branch names ------------------------------------------------------------------------


@needs_git
@pytest.mark.parametrize(
    "name",
    [
        *BRANCHES_GIT_ACCEPTS,
        *(name for name, _ in REFUSED_BRANCHES),
        "agentic-tests/shop-accounts-fc3ac45f",
        "feature/ü-umlaut",
        "a.b/c_d-e",
        "x@y",
        "a/lock",
    ],
)
def test_a_branch_name_we_accept_is_one_git_accepts(name, tmp_path):
    git_says = subprocess.run(
        ["git", "check-ref-format", "--branch", name], cwd=tmp_path, capture_output=True
    )

    if safety.branch_name_problem(name) is None:
        assert git_says.returncode == 0, git_says.stderr


@pytest.mark.parametrize(("name", "reason"), REFUSED_BRANCHES)
def test_a_hostile_branch_name_is_refused_by_the_service_and_the_api(
    scope, context_session, user, name, reason
):
    with pytest.raises(InvalidInput) as error:
        services.update_session(
            scope=scope, session_id=context_session.pk, state={"branch_name": name}
        )
    assert error.value.errors == {"state": [branch_error(reason)]}

    response = client_for(user).patch(
        url(context_session), {"state": {"branch_name": name}}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"state": [branch_error(reason)]}
    context_session.refresh_from_db()
    assert context_session.state == {}


def test_full_clean_refuses_a_hostile_branch_name_for_every_door(context_session):
    context_session.state = {"branch_name": "--orphan=x"}

    with pytest.raises(ValidationError) as error:
        context_session.full_clean()

    assert error.value.message_dict == {"state": [branch_error('it starts with "-"')]}


@pytest.mark.parametrize(("name", "reason"), REFUSED_BRANCHES[:6])
def test_a_hostile_branch_stored_before_the_rules_is_never_handed_out(
    scope, context_session, user, name, reason
):
    Session.objects.filter(pk=context_session.pk).update(state={"branch_name": name})

    response = client_for(user).post(url(context_session, "next-command/"))

    assert response.status_code == 422
    assert response.json() == {
        "detail": f"Branch name {name!r} is not a valid git branch name: {reason}"
    }
    assert not Interaction.objects.filter(session=context_session).exists()


@pytest.mark.parametrize(("name", "reason"), REFUSED_BRANCHES)
def test_every_git_command_builder_refuses_a_hostile_branch(name, reason):
    message = f"Branch name {name!r} is not a valid git branch name: {reason}"
    builders = [
        lambda: conventions.switch_branch_command(name, base="main"),
        lambda: conventions.switch_branch_command(name, base="main", publish=True),
        lambda: conventions.switch_branch_command("agentic-tests/x", base=name),
        lambda: conventions.commit_component_command(name, "tests/test_a.py", "m"),
        lambda: conventions.commit_context_command(name, ["tests/test_a.py"], "m"),
    ]
    for build in builders:
        with pytest.raises(StepError) as error:
            build()
        assert error.value.message == message


@needs_git
@pytest.mark.parametrize("name", BRANCHES_GIT_ACCEPTS)
def test_a_branch_full_of_shell_syntax_reaches_git_as_it_is(scope, project, tmp_path, name):
    work, origin, env = make_workspace(tmp_path)
    session = make_context_session(scope, make_context(project, [("Cart", 1)]))
    services.update_session(scope=scope, session_id=session.pk, state={"branch_name": name})

    drive_to_end(scope, session, Client(scope, work, env))

    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE
    assert nothing_ran(tmp_path)
    branches = git("for-each-ref", "--format=%(refname)", "refs/heads/", cwd=origin, env=env)
    assert f"refs/heads/{name}" in branches.splitlines()
    child = Session.objects.get(parent_session=session)
    tree = git("ls-tree", "-r", "--name-only", f"refs/heads/{name}", cwd=origin, env=env)
    assert child.state["test_file"] in tree.split()


# --- test files --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "reason"), REFUSED_TEST_FILES)
def test_a_hostile_test_file_is_refused_by_the_service_and_the_api(
    scope, context_session, user, path, reason
):
    with pytest.raises(InvalidInput) as error:
        services.update_session(
            scope=scope, session_id=context_session.pk, state={"test_file": path}
        )
    assert error.value.errors == {"state": [path_error(reason)]}

    response = client_for(user).patch(
        url(context_session), {"state": {"test_file": path}}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"state": [path_error(reason)]}


@pytest.mark.parametrize(("path", "reason"), REFUSED_TEST_FILES)
def test_every_command_builder_refuses_a_hostile_test_file(project, path, reason):
    message = f"Test file {path!r} must be a relative path inside the repository: {reason}"
    builders = [
        lambda: conventions.test_command(project, path),
        lambda: conventions.commit_component_command("b", path, "m"),
        lambda: conventions.commit_context_command("b", ["tests/test_ok.py", path], "m"),
    ]
    for build in builders:
        with pytest.raises(StepError) as error:
            build()
        assert error.value.message == message


@pytest.mark.parametrize("step", ["RunTests", "Finalize"])
def test_a_hostile_test_file_stored_before_the_rules_is_never_handed_out(
    scope, context_session, user, step
):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = Session.objects.filter(parent_session=context_session).first()
    for _ in range(2 if step == "RunTests" else 3):
        step_once(scope, child)
    Session.objects.filter(pk=child.pk).update(state={"test_file": "--junitxml=PWNED"})

    response = client_for(user).post(url(child, "next-command/"))

    assert response.status_code == 422
    assert response.json() == {
        "detail": "Test file '--junitxml=PWNED' must be a relative path inside the "
        'repository: it starts with "-"'
    }
    assert child.interactions.filter(completed_at__isnull=True).count() == 0


def test_the_context_refuses_to_commit_a_childs_hostile_test_file(scope, context_session):
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    step_once(scope, context_session)
    kids = Session.objects.filter(parent_session=context_session)
    kids.update(status=SessionStatus.COMPLETE)
    Session.objects.filter(pk=kids[0].pk).update(state={"test_file": "../PWNED.py"})
    step_once(scope, context_session)

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=context_session.pk)

    assert error.value.message == (
        "Test file '../PWNED.py' must be a relative path inside the repository: "
        'it has a ".." part'
    )


# --- module names ------------------------------------------------------------------------

MODULE_NAME_RULE = safety.module_name_problem("$")


@pytest.mark.parametrize(
    "module_name",
    ["$(touch /tmp/x)", "`id`", "-x", ".hidden", "a/b", "a b", "a;b", "Shop::User", "ü", "a\nb"],
)
def test_a_module_name_unsafe_in_a_path_is_refused(project, user, module_name):
    component = Component(project=project, name="X", module_name=module_name, type="module")
    with pytest.raises(ValidationError) as error:
        component.full_clean()
    assert error.value.message_dict == {"module_name": [MODULE_NAME_RULE]}

    response = client_for(user).post(
        "/api/components/",
        {"project": str(project.pk), "name": "X", "module_name": module_name, "type": "x"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"module_name": [MODULE_NAME_RULE]}
    assert not Component.objects.filter(name="X").exists()


@pytest.mark.parametrize(
    "module_name", ["Shop.Accounts.User", "Shop.Accounts.UserToken", "my_app.core", "a-b", "_x"]
)
def test_module_names_as_codebases_write_them_are_accepted(project, module_name):
    Component(project=project, name="X", module_name=module_name, type="module").full_clean()


def test_a_module_name_stored_before_the_rules_gives_no_test_file(scope, project, context_session):
    project.test_path_template = "tests/{module}.py"
    project.save()
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = Session.objects.filter(parent_session=context_session).first()
    Component.objects.filter(pk=child.component_id).update(module_name="$(touch PWNED)")
    step_once(scope, child)

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=child.pk)

    assert error.value.message == (
        f"Test file 'tests/$(touch PWNED).py' must be a relative path inside the repository: "
        f"{PATH_CHARACTERS}"
    )


# --- templates ---------------------------------------------------------------------------

WORD_OF_ITS_OWN = (
    "{placeholder} must be a shell word of its own (or follow NAME=), outside quotes, $(...) "
    "and backticks: the service quotes the value itself, e.g. pytest {placeholder}."
)
REPARSED = (
    "{placeholder} must not be handed to a command that reads it as shell code or arithmetic "
    "(eval, sh -c, let, [[ ]], (( )) ...)."
)
RUNS_CODE = (
    "{placeholder} must not be the argument of an option that runs code "
    "(-c, -e, --eval, -S, --command, --exec ...)."
)
EXPANDED = (
    "The command that receives {placeholder} must be written out, not left to an expansion "
    "($VAR, $(...)): what it runs is only known when it runs."
)
# (template, message, whether one of HOSTILE_VALUES, quoted as the service quotes it, makes
# it run a command: the others are refused because a value is parsed again there all the same,
# even if these values happen to come out unharmed).
REFUSED_TEMPLATES = [
    ('printf %s "{x}"', WORD_OF_ITS_OWN, True),
    ("printf %s '{x}'", WORD_OF_ITS_OWN, True),
    ("printf %s \\{x}", WORD_OF_ITS_OWN, True),
    ("printf %s x{x}", WORD_OF_ITS_OWN, False),
    ("printf %s {x}.py", WORD_OF_ITS_OWN, False),
    ("printf %s ${x}", WORD_OF_ITS_OWN, False),
    ("printf %s $(echo {x})", WORD_OF_ITS_OWN, False),
    ("printf %s `echo {x}`", WORD_OF_ITS_OWN, False),
    ("printf %s {x}{x}", WORD_OF_ITS_OWN, False),
    ("eval printf %s {x}", REPARSED, True),
    ("sh -c {x}", REPARSED, True),
    ("bash -ec {x}", REPARSED, True),
    ("V={x}; eval printf %s $V", REPARSED, True),
    ("(( {x} ))", REPARSED, True),
    ("[[ {x} -eq 1 ]]", REPARSED, True),
    ("let {x}", REPARSED, True),
    # Command words are judged after the shell's quote removal.
    ("'sh' -c {x}", REPARSED, True),
    ('"sh" -c {x}', REPARSED, True),
    ('s"h" -c {x}', REPARSED, True),
    ('"eval" printf %s {x}', REPARSED, True),
    ("\\eval printf %s {x}", REPARSED, True),
    ("env 'bash' -c {x}", REPARSED, True),
    ("V=1 'sh' -c {x}", REPARSED, True),
    # A placeholder may not be the argument of an option that runs code, of any program.
    ("flock lockfile -c {x}", RUNS_CODE, True),
    ("python3 -c {x}", RUNS_CODE, False),
    ("python3 -Ic {x}", RUNS_CODE, False),
    ("perl -e {x}", RUNS_CODE, False),
    ("perl -we {x}", RUNS_CODE, False),
    ("env -S {x}", RUNS_CODE, False),
    ("su nobody -c {x}", RUNS_CODE, False),
    ("script -q -c {x} /dev/null", RUNS_CODE, False),
    ("node --eval={x}", RUNS_CODE, False),
    ("find . -maxdepth 0 -exec {x} \\;", RUNS_CODE, False),
    # Programs that run a positional argument as a command line or a script.
    ("ssh localhost {x}", REPARSED, False),
    ("watch {x}", REPARSED, False),
    ("awk {x}", REPARSED, False),
    # What runs is only known at run time.
    ("$SHELL -c {x}", EXPANDED, False),
    ("env $RUNNER {x}", EXPANDED, False),
    ("printf %s # {x}", "{placeholder} is inside a comment.", True),
    (
        "printf %s 'unclosed {x}",
        "The command is not valid shell: a quote, $( or ${ is not closed.",
        True,
    ),
    (
        "printf %s {x}\nrm -rf .",
        "Write the command on one line, without control characters.",
        False,
    ),
]
ACCEPTED_TEMPLATES = [
    "printf '%s\\n' {x}",
    "printf %s -- {x} | cat",
    "cd . && printf %s {x} >out.txt && cat out.txt",
    "env VALUE={x} printenv VALUE",
    "printf %s --value={x}",
    "printf '{{%s}}' {x}",
    "true; printf %s {x} # the value, as it came",
    # Claude Code's -p is a prompt, not code.
    "printf %s -p {x}",
    "PYTHONPATH=$PWD/src printf %s {x}",
    "printf %s --rootdir=$PWD {x}",
]
HOSTILE_VALUES = [
    "$(touch PWNED1)",
    "`touch PWNED2`",
    "'; touch PWNED3; '",
    '"; touch PWNED4; "',
    "a\ntouch PWNED5 #",
    "a[$(touch PWNED6)]",
    "x' \"$(touch PWNED7)\" '",
    "--help",
    "\\",
]


def run(command, cwd):
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize(("template", "message"), [entry[:2] for entry in REFUSED_TEMPLATES])
@pytest.mark.parametrize(
    ("field", "placeholder"),
    [("test_command_template", "test_file"), ("agent_command_template", "prompt")],
)
def test_a_template_that_lets_the_shell_read_a_value_again_is_refused(
    project, field, placeholder, template, message
):
    setattr(project, field, template.replace("{x}", "{" + placeholder + "}"))

    with pytest.raises(ValidationError) as error:
        project.full_clean()

    expected = message.replace("{placeholder}", "{" + placeholder + "}")
    assert error.value.message_dict == {field: [expected]}


@needs_bash
@pytest.mark.parametrize(
    "template", [template for template, _, runs_a_command in REFUSED_TEMPLATES if runs_a_command]
)
def test_a_refused_template_would_have_run_a_hostile_value(tmp_path, template):
    for value in HOSTILE_VALUES:
        run(template.format(x=shlex.quote(value)), tmp_path)

    assert not nothing_ran(tmp_path), "the template was refused for nothing"


@needs_bash
@pytest.mark.parametrize("template", ACCEPTED_TEMPLATES)
def test_an_accepted_template_keeps_every_hostile_value_inert(project, tmp_path, template):
    project.test_command_template = template.replace("{x}", "{test_file}")
    project.agent_command_template = template.replace("{x}", "{prompt}")
    project.full_clean()

    for value in HOSTILE_VALUES:
        ran = run(template.format(x=shlex.quote(value)), tmp_path)
        assert value in ran.stdout, ran.stderr

    assert nothing_ran(tmp_path)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("../{module}.py", 'it has a ".." part'),
        ("/tmp/{module_snake}.py", "it is an absolute path"),
        ("-{module}.py", 'it starts with "-"'),
        (".git/hooks/{module_snake}", "it points into .git"),
        ("tests/{module} x.py", PATH_CHARACTERS),
        ("tests/$(id)/{module_snake}.py", PATH_CHARACTERS),
        ("tests//{module}.py", 'it has an empty part between "/"'),
    ],
)
def test_a_path_template_that_leaves_the_repository_is_refused(project, template, reason):
    project.test_path_template = template

    with pytest.raises(ValidationError) as error:
        project.full_clean()

    sample = template.format(
        module="Shop.Accounts.UserToken", module_snake="shop_accounts_user_token"
    )
    assert error.value.message_dict == {
        "test_path_template": [
            f"The test files it names (e.g. {sample!r}) must be relative paths inside the "
            f"repository: {reason}."
        ]
    }


@pytest.mark.parametrize(
    "template",
    ["tests/{module}.py", "spec/{module}/{module_snake}_spec.py", "t/test_{module_snake}.py"],
)
def test_path_templates_inside_the_repository_are_accepted(project, template):
    project.test_path_template = template

    project.full_clean()


def test_the_issue_10_3_attack_stored_before_the_rules_runs_nothing(scope, project, context):
    Project.objects.filter(pk=project.pk).update(test_command_template='pytest "{test_file}"')
    context_session = make_context_session(scope, context)
    services.spawn_child_sessions(scope=scope, session_id=context_session.pk)
    child = Session.objects.filter(parent_session=context_session).first()
    step_once(scope, child)
    step_once(scope, child)
    scope.project.refresh_from_db()

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=child.pk)

    assert error.value.message == (
        "The project's test command template cannot be used: "
        + WORD_OF_ITS_OWN.format(placeholder="{test_file}")
    )


def test_the_admin_refuses_a_quoted_placeholder(admin_client, project):
    response = admin_client.post(
        f"/admin/components_app/project/{project.pk}/change/",
        {
            "name": project.name,
            "test_command_template": 'pytest "{test_file}"',
            "test_path_template": "tests/test_{module_snake}.py",
            "Project_members-TOTAL_FORMS": "0",
            "Project_members-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["test_command_template"] == [WORD_OF_ITS_OWN.format(placeholder="{test_file}")]
    project.refresh_from_db()
    assert project.test_command_template == "pytest {test_file}"


def test_a_child_branch_comes_from_its_parent_and_is_checked_there(scope, context_session):
    make_child(context_session, make_component(scope.project, "Lone"))
    Session.objects.filter(pk=context_session.pk).update(state={"branch_name": "-x"})
    child = Session.objects.get(parent_session=context_session)

    with pytest.raises(StepError) as error:
        services.next_command(scope=scope, session_id=child.pk)

    assert (
        error.value.message
        == "Branch name '-x' is not a valid git branch name: it starts with \"-\""
    )


@pytest.mark.parametrize(
    ("test_file", "expected"),
    [
        ("store/cache_test.go", "go test ./store"),
        ("main_test.go", "go test ."),
        ("a b/x_test.go", None),
    ],
)
def test_the_test_dir_placeholder_is_the_test_files_directory(project, test_file, expected):
    project.test_command_template = "go test {test_dir}"
    if expected is None:
        with pytest.raises(StepError):
            conventions.test_command(project, test_file)
        return
    assert conventions.test_command(project, test_file) == expected


def test_the_test_dir_placeholder_must_be_a_word_of_its_own(project):
    with pytest.raises(ValidationError) as error:
        Project.test_command_template.field.run_validators("go test ./{test_dir}")
    assert "{test_dir} must be a shell word of its own" in str(error.value)

from io import StringIO

from django.core.management import call_command


def run(*args: str) -> tuple[int, str, str]:
    """Run a management command in-process: (exit status, stdout, stderr)."""
    stdout, stderr = StringIO(), StringIO()
    try:
        call_command(*args, stdout=stdout, stderr=stderr)
    except SystemExit as exit:
        return exit.code, stdout.getvalue(), stderr.getvalue()
    return 0, stdout.getvalue(), stderr.getvalue()

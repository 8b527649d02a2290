"""The admin of sessions and interactions: the pages (``sessions``) and the Session list's
actions (``actions``). Importing the package registers the pages."""

from sessions_app.admin import sessions  # noqa: F401

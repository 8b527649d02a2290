"""sessions_app's answers to what components_app announces (it cannot call up here)."""

from __future__ import annotations

from typing import Any

from components_app.signals import components_excluded
from sessions_app import services


def cancel_children_of_excluded(sender: Any, *, scope: Any, component_ids: list, **_: Any) -> None:
    services.cancel_children_of_excluded(scope=scope, component_ids=component_ids)


def connect() -> None:
    components_excluded.connect(
        cancel_children_of_excluded, dispatch_uid="sessions_app.cancel_children_of_excluded"
    )

"""What components_app tells the apps above it, which it may not import.

``components_excluded``: sent inside the transaction that marked components excluded, with
``scope`` and ``component_ids``; sessions_app cancels their active child sessions, so a run no
longer waits for a component the team left out.
"""

from django.dispatch import Signal

components_excluded = Signal()

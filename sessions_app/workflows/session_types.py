"""The session types, by the exact names clients send.

These names sit below the models and the workflows alike: the model validates a session's
type against ``REGISTERED`` without importing the workflows (whose steps import the models),
and the registry checks at import that it defines a workflow for exactly these names.
"""

CONTEXT_TESTING_SESSIONS = "ContextTestingSessions"
COMPONENT_TEST_SESSIONS = "ComponentTestSessions"

REGISTERED: tuple[str, ...] = (CONTEXT_TESTING_SESSIONS, COMPONENT_TEST_SESSIONS)


def is_registered(session_type: str) -> bool:
    return session_type in REGISTERED

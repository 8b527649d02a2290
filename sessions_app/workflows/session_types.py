"""The session types, by the exact names clients send."""

CONTEXT_TESTING_SESSIONS = "ContextTestingSessions"
COMPONENT_TEST_SESSIONS = "ComponentTestSessions"

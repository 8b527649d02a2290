"""What both apps share and neither owns: the scope a service acts in, the errors a user can
cause, storable JSON, what may reach a command, and the API's common pieces. Both apps import
it; it imports neither (a scope names a project for type checkers only) and nothing of the
server's but what the runner ``spawnctl`` shares (tests/test_import_map.py)."""

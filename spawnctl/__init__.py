"""spawnctl: the runner that executes a session's commands through the service's REST API.

A client only: it talks HTTP to the server and imports nothing from Django or the apps.
"""

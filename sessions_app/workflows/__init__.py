"""Workflows: session types as ordered steps, each producing a command and handling its result."""

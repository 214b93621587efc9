"""Scenario files: callgate's own test format for agents (DESIGN §6)."""

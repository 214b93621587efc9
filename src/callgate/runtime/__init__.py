"""Wiring: one call from answer to end — the SWML interpreter, the agent session and call control."""

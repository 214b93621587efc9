"""Channels turn a call into events and carry out call operations: `sim` (scenarios, virtual time)
and `console` (`callgate chat`). A channel imports no agent code."""

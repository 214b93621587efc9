"""Telephony abstractions (`base`) and the clock. Channels implement `base`; agent/control use it."""

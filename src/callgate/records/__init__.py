"""Call records and post-call reports: the record model, the store (SQLite or PostgreSQL), the
durable outbox that delivers post_prompt reports, and the `callgate calls` commands."""

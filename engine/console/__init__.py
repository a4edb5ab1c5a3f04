"""The web console: dashboard, queues, messages, identity work list and audit, behind a
login with three roles (viewer, operator, vigilance)."""

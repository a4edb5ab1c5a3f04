"""Inbound: the MLLP listener, the intake that stores and acknowledges each message, and the
listener's own bookkeeping (connection slots, traffic and incident lines)."""

"""Routing: after the ACK, each stored message runs through its route's steps, in order, and
its destinations' outbox entries are written."""

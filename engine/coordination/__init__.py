"""Coordination between engines sharing a store: leases on jobs, and the state published for
operator commands."""

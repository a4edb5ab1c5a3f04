"""Delivery: moves outbox entries to their destinations, in order, until acknowledged.

One worker per lane of each destination (one lane unless `parallel_by = "patient"`) reads
its pending entries a window at a time, sends each through the destination's sender, and
records the outcome; `service.DeliveryService` starts and stops them with the engine.
"""

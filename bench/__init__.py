"""Benchmarks of the modelops operator: scale, API cost, rollback latency, the decision core (``make bench``)."""

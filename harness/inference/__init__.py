"""Paired comparison of candidates with the baseline, and the launch gate on top of it."""

"""Compute-time distributions: one module each, listed in ``registry`` (see ``base.Dist``)."""

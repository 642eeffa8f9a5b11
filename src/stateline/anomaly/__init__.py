"""Anomaly scorers, thresholds, baselines and their evaluation.

This layer is filled by its own issue; the folder exists so the layering is visible from the
first commit (data -> nn -> train -> stream -> anomaly -> serve, with cli on top).
"""

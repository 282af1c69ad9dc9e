"""Tracking: the MLflow run of each job, provenance, sweeps as studies, and the comparison
report (tables and plots)."""

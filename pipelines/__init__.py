"""Beam pipelines and their CLI commands. No dataset or task logic lives here: only wiring."""

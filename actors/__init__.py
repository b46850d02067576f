"""Thin Ray actors around rollout/, rewards/ and learners/: they hold resources, never algorithm logic."""

"""Wiring: config tree, Ray startup and placement, the driver loop, the Serve app and the CLI."""

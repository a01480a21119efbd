"""Inputs and outputs: reading inputs, filesets, and histogram files (ROOT and JSON)."""

"""Analyses that ship with agcframe."""

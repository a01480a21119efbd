"""The IRIS-HEP AGC CMS ttbar analysis: its definition, its coffea and numba implementations, its ML stage and models."""

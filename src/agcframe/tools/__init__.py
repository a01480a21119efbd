"""Tools around an analysis: the NanoAOD generator, the realism check and the container build."""

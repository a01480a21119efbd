"""The run engine: the pipeline of stages, chunked processing, checkpoints, partial results and outputs."""

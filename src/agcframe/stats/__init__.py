"""Statistics: the fit engine, the statistical model, the fit's log and its plots."""

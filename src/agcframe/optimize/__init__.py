"""``agcframe optimize``: an analysis' cuts moved by gradient through its statistical model."""

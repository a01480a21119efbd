"""Where the committed baseline images of the plot tests are, and the variable that rewrites them."""

from pathlib import Path

BASELINES = Path(__file__).resolve().parent / "baseline_images"
#: set to 1 to write the plots of this run as the new baselines
UPDATE_ENV = "AGCFRAME_UPDATE_BASELINES"

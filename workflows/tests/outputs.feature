# REANA workflow tests (reana-client test): the outputs agcframe's workflow must produce

Feature: agcframe workflow outputs

    As a physicist,
    I want the AGC workflow to produce its histograms, fit result and plots,
    so that I can use the measurement and reproduce it.

    Scenario: The histograms are written in cabinetry's naming
        When the workflow is finished
        Then the workspace should contain "results/histograms.root"
        And the size of the file "results/histograms.root" should be between 20KiB and 20MiB

    Scenario: The run is described
        When the workflow is finished
        Then the workspace should contain "results/metrics.json"
        And the file "results/metrics.json" should contain "\"histograms\": 124"
        And the workspace should contain "results/provenance.json"
        And the file "results/provenance.json" should contain "agcframe_version"

    Scenario: The fit measured the ttbar normalisation
        When the workflow is finished
        Then the workspace should contain "results/fit/fit_results.json"
        And the file "results/fit/fit_results.json" should contain "ttbar_norm"

    Scenario: The fit plots were drawn
        When the workflow is finished
        Then the workspace should contain "results/fit/plots/4j2b_SR_postfit.png"
        And the workspace should contain "results/fit/plots/pulls.png"
        And the workspace should contain "results/fit/plots/correlation_matrix.png"

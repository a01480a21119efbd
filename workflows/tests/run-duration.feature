# REANA workflow tests (reana-client test): the run's duration

Feature: Run duration

    As a physicist,
    I want the workflow on the embedded dataset to finish quickly,
    so that an unusual slowdown of the computing resources stands out.

    Scenario: The workflow terminates in a reasonable amount of time
        When the workflow is finished
        Then the workflow run duration should be less than 30 minutes

"""The kiosk conformance suite: the scenario catalogue, the rules that judge a run, the runner
that drives a kiosk program against a served card, and the report."""

"""Usage accounting (requests and tokens by key, deployment, revision and model version) and
feedback on responses."""

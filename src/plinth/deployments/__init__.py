"""Deployments: revisions of model ids, canaries, traffic, rollout rules and the serving hook."""

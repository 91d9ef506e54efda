"""Guardrails: detectors (PII/PHI, secrets, toxicity, prompt injection, topic, groundedness),
versioned policies of rules (block, redact, flag), streaming redaction, evaluation.

Nothing heavy is imported here: detectors load their tables and weights on first use.
"""

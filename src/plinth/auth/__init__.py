"""API keys, scopes, per-key rate limits and token budgets, and the audit log."""

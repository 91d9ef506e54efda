"""OpenAI protocol, completion service, admission, the engine bridge and stop sequences."""

"""Outbound HTTP: the one fetcher every server-side request to another host goes through
(remote engines, the remote embedder, URL ingestion), its rules, and the named secrets that
remote engines authenticate with (ADR 0080, 0081).

``outbound`` sits below the adapters (runtimes, embeddings) and above the core (config): it
reads the settings it is built from and nothing else of plinth's but ``errors``.
"""

from plinth.outbound.fetcher import Fetched, Outbound, OutboundLimit, PinnedTransport, Resolver, system_resolver
from plinth.outbound.policy import OutboundPolicy, OutboundRefused, check_url, parse_ip_literal, parse_ipv4_loose, shown_url
from plinth.outbound.secrets import RedactSecrets, Secret, SecretStore, redact_logs

__all__ = [
    "Fetched",
    "Outbound",
    "OutboundLimit",
    "OutboundPolicy",
    "OutboundRefused",
    "PinnedTransport",
    "RedactSecrets",
    "Resolver",
    "Secret",
    "SecretStore",
    "check_url",
    "parse_ip_literal",
    "parse_ipv4_loose",
    "redact_logs",
    "shown_url",
    "system_resolver",
]

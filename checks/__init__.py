"""The checker: claim registry, cross-checks, certificates, strategies, runner, reports and CLI."""

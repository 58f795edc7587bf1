"""secrets-migration: move `.env` credentials into Vault KV v2 or AWS Secrets Manager.

The package is importable without Pulumi: `components.manifest`, `components.envfile` and the CLI
load fast; the Pulumi components (`vault_store`, `aws_store`) import Pulumi themselves.
"""

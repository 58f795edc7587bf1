# ci-preview: the Vault policy of the token a pull request's `pulumi preview --refresh=false` runs with
# (environments `staging-preview` and `production-preview`; docs/ci.md). It is the same for every stack.
#
# Without a refresh, the Vault provider calls Vault only while it configures itself
# (terraform-provider-vault internal/provider/meta.go): it looks up its own token, mints a short-lived
# child token with the same policies, and reads sys/seal-status (unauthenticated) for the version.
# Diffs are computed from Pulumi's state, offline. Nothing else is granted: no secret data (a refresh
# of vault_kv_secret_v2 reads <mount>/data/<ns>/<path>, the value itself, which is why CI never refreshes
# in a preview), no metadata, no policies, no mounts, no AppRole roles, and no write anywhere.
# tests/live/test_preview_credentials.py checks this file on OpenBao.

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/create" {
  capabilities = ["update"]
}

"""Environment variables set for one block of code only (VAULT_ADDR / VAULT_TOKEN / AWS_* for a deploy
and a verify run in-process), then restored as they were."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in before.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


# --- what the Vault and AWS CLIs read from the environment ------------------------------------------------


def vault_tls_verify(environ: Mapping[str, str] = os.environ) -> bool | str:
    """TLS verification as the Vault CLI reads it: False with VAULT_SKIP_VERIFY, else the CA file or
    directory of VAULT_CACERT / VAULT_CAPATH, else True (the system's CAs)."""
    if environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "t", "true", "yes"):
        return False
    return environ.get("VAULT_CACERT") or environ.get("VAULT_CAPATH") or True


def proxy_for(url: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The HTTP(S)_PROXY that applies to `url` (NO_PROXY honoured), as the Vault CLI does; urllib's
    parser is imported only when a proxy variable is set."""
    if not url or not any(name.lower().endswith("_proxy") for name in environ):
        return None
    import urllib.request
    from urllib.parse import urlsplit

    proxies: dict[str, str] = {}
    for name in sorted(environ, key=str.islower):  # lower-case names win, as in urllib
        if name.lower().endswith("_proxy") and environ[name]:
            proxies[name.lower().removesuffix("_proxy")] = environ[name]
    host = urlsplit(url).hostname or ""
    if urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]  # not in typeshed
        return None
    return proxies.get(urlsplit(url).scheme)


def aws_region(environ: Mapping[str, str] = os.environ) -> str | None:
    """AWS_REGION, else AWS_DEFAULT_REGION (the order of the AWS CLI v2 and SDKs); None: the profile's.

    The installed botocore reads only AWS_DEFAULT_REGION, so AWS_REGION alone would be ignored: every
    boto3 session here is given this region explicitly.
    """
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None

"""The one URI masker: a URI fit to print, log or store in a plain file has no credentials in it."""

from __future__ import annotations


def public_uri(uri: str, *, mask: str = "***@") -> str:
    """`scheme://user:password@host/…` → `scheme://***@host/…`; a URI without userinfo is returned unchanged.

    Only the authority part (before the first `/` after the scheme) is looked at, so an `@` later in a path or a
    query (`s3://bucket/a@b`) is left alone. `mask=""` drops the userinfo instead of masking it: the form
    `run-all`'s cached step fingerprints have always hashed (changing it would re-run register on upgrade).
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return uri
    return f"{scheme}://{mask}{authority.rsplit('@', 1)[1]}{slash}{path}"

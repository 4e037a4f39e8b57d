"""The key set as Kubernetes Secrets, with the names and keys the charts read, and the decision a
rerun makes for each: create (absent), unchanged (the same bytes), or a one-line refusal naming
the secret (anything else: airgap never overwrites a key).

    keys = keyset_from_cluster(site, existing)      # read back what exists, make what is missing
    plan = plan_secrets(render_secrets(site, keys), existing)   # raises KeyMismatch
    ...                                             # after the CT log's tree exists:
    plan_secrets([ctlog_config_secret(site, keys, tree_id)], existing)

`existing` is the Secrets read back from the cluster as dicts (the API's JSON: `metadata`,
base64 `data`), so all of this runs without a cluster.

The Secrets, by namespace (component) and name:
- trillian `trillian-database`: mysql-root-password, mysql-password, mysql-user, mysql-database
  (`mysql.auth.existingSecret`; not made when the site brings its own database);
- rekor `rekor-signer`: private (PKCS#8 PEM), public, created (`server.signerFileSecretOptions`);
- fulcio `fulcio-server-secret`: private (encrypted PKCS#8), password, cert (the chain), public,
  created (`server.secret`); `fulcio-pub-key`: cert, public (public, as createcerts makes it);
- ctlog `ctlog-key`: private (encrypted SEC1 PEM), password, public, created; `ctlog-public-key`:
  public; `ctlog-secret` once the tree exists: config (ct_server's LogMultiConfig), private,
  public, fulcio-0 (the Fulcio root) — what the chart's createctconfig job would have made;
- tsa `tsa-server-secret`: private (encrypted PKCS#8), password, cert-chain, created;
- tuf: `rekor-public-key` (key), `fulcio-pub-key` (cert), `ctlog-public-key` (public),
  `tsa-cert-chain` (cert-chain): public material only, the tuf chart's `secrets.*`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from offline.errors import AirgapError, UsageError
from provisioner.stack import keys as keymaker
from provisioner.stack.keys import CertifiedKey, DatabaseAuth, KeySet, SigningKey
from provisioner.stack.site import CT_LOG_PREFIX, Site

MANAGED_BY = {"app.kubernetes.io/managed-by": "airgap"}

DATABASE = "trillian-database"
REKOR_SIGNER = "rekor-signer"
FULCIO_SERVER = "fulcio-server-secret"
FULCIO_PUBLIC = "fulcio-pub-key"
CTLOG_KEY = "ctlog-key"
CTLOG_PUBLIC = "ctlog-public-key"
CTLOG_CONFIG = "ctlog-secret"
TSA_SERVER = "tsa-server-secret"
REKOR_PUBLIC = "rekor-public-key"
TSA_CHAIN = "tsa-cert-chain"

# Where the ctlog chart mounts `ctlog-secret`, and the Service of Trillian's log server.
CTFE_KEYS = "/ctfe-keys"
TRILLIAN_LOG_SERVER = "trillian-logserver"
TRILLIAN_RPC_PORT = 8091


class KeyMismatch(AirgapError):
    """A Secret airgap owns holds something other than the site's keys."""

    exit_code = 2


@dataclass(frozen=True)
class SecretPlan:
    namespace: str
    name: str
    action: Literal["create", "unchanged"]
    manifest: dict[str, Any]

    def __str__(self) -> str:
        return f"secret {self.namespace}/{self.name}: {self.action}"


# -- rendering ------------------------------------------------------------------------------------


def render_secrets(site: Site, keys: KeySet) -> list[dict[str, Any]]:
    """Every Secret of the key set that exists before the charts are installed, in order."""
    public = keymaker.public_material(keys)
    fulcio_root = public.fulcio_root
    rendered = []
    if keys.database is not None:
        rendered.append(_secret(site, "trillian", DATABASE, _database(keys.database)))
    rendered += [
        _secret(site, "rekor", REKOR_SIGNER, _signing(keys.rekor, public.rekor)),
        _secret(
            site,
            "fulcio",
            FULCIO_SERVER,
            {
                **_signing(keys.fulcio, None),
                "cert": keys.fulcio.chain_pem,
                "public": _fulcio_pub(keys),
            },
        ),
        _secret(site, "fulcio", FULCIO_PUBLIC, {"cert": fulcio_root, "public": _fulcio_pub(keys)}),
        _secret(site, "ctlog", CTLOG_KEY, _signing(keys.ctlog, public.ctlog)),
        _secret(site, "ctlog", CTLOG_PUBLIC, {"public": public.ctlog}),
    ]
    if keys.tsa is not None:
        rendered.append(
            _secret(
                site,
                "tsa",
                TSA_SERVER,
                {**_signing(keys.tsa, None), "cert-chain": keys.tsa.chain_pem},
            )
        )
    rendered += tuf_secrets(site, keys)
    return rendered


def tuf_secrets(site: Site, keys: KeySet) -> list[dict[str, Any]]:
    """The tuf namespace's Secrets: public keys and certificates, nothing else."""
    public = keymaker.public_material(keys)
    rendered = [
        _secret(site, "tuf", REKOR_PUBLIC, {"key": public.rekor}),
        _secret(site, "tuf", FULCIO_PUBLIC, {"cert": public.fulcio_root}),
        _secret(site, "tuf", CTLOG_PUBLIC, {"public": public.ctlog}),
    ]
    if public.tsa_chain is not None:
        rendered.append(_secret(site, "tuf", TSA_CHAIN, {"cert-chain": public.tsa_chain}))
    return rendered


def ctlog_config_secret(site: Site, keys: KeySet, tree_id: int) -> dict[str, Any]:
    """`ctlog-secret`, which ct_server reads at /ctfe-keys: its config names the tree, the key
    (with its password: this Secret is as private as the key) and the Fulcio root it accepts."""
    if tree_id <= 0:
        raise UsageError(f"CT log tree ID {tree_id} is not a Trillian tree ID")
    password = keys.ctlog.password
    # The password goes into a quoted prototext string: only airgap's own alphabet, so a
    # password read back from the cluster cannot change the config around it.
    if password is None or not re.fullmatch(r"[A-Za-z0-9_-]{16,}", password):
        raise KeyMismatch(
            f"secret {site.namespace('ctlog')}/{CTLOG_KEY}: the CT log key's password is not "
            f"one airgap makes (16 or more of A-Z a-z 0-9 _ -)"
        )
    backend = f"{TRILLIAN_LOG_SERVER}.{site.namespace('trillian')}:{TRILLIAN_RPC_PORT}"
    config = (
        "backends {\n"
        "  backend {\n"
        '    name: "trillian"\n'
        f'    backend_spec: "{backend}"\n'
        "  }\n"
        "}\n"
        "log_configs {\n"
        "  config {\n"
        f"    log_id: {tree_id}\n"
        f'    prefix: "{CT_LOG_PREFIX}"\n'
        f'    roots_pem_file: "{CTFE_KEYS}/fulcio-0"\n'
        "    private_key {\n"
        "      [type.googleapis.com/keyspb.PEMKeyFile] {\n"
        f'        path: "{CTFE_KEYS}/private"\n'
        f'        password: "{password}"\n'
        "      }\n"
        "    }\n"
        '    ext_key_usages: "CodeSigning"\n'
        '    log_backend_name: "trillian"\n'
        "  }\n"
        "}\n"
    )
    public = keymaker.public_material(keys)
    return _secret(
        site,
        "ctlog",
        CTLOG_CONFIG,
        {
            "config": config.encode(),
            "private": keys.ctlog.pem,
            "public": public.ctlog,
            "fulcio-0": public.fulcio_root,
        },
    )


def _secret(site: Site, component: str, name: str, data: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": site.namespace(component), "labels": MANAGED_BY},
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())},
    }


def _signing(key: SigningKey, public: bytes | None) -> dict[str, bytes]:
    data = {"private": key.pem, "created": _time(key.created).encode()}
    if key.password is not None:
        data["password"] = key.password.encode()
    if public is not None:
        data["public"] = public
    return data


def _fulcio_pub(keys: KeySet) -> bytes:
    return keys.fulcio.public_pem(f"secret {FULCIO_SERVER}")


def _database(auth: DatabaseAuth) -> dict[str, bytes]:
    return {
        "mysql-root-password": auth.root_password.encode(),
        "mysql-password": auth.password.encode(),
        "mysql-user": auth.user.encode(),
        "mysql-database": auth.database.encode(),
    }


def _time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reading back ---------------------------------------------------------------------------------

Existing = Mapping[tuple[str, str], Mapping[str, Any]]


def index_secrets(secrets: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """Secrets read from the cluster, by (namespace, name)."""
    indexed: dict[tuple[str, str], Mapping[str, Any]] = {}
    for secret in secrets:
        metadata = secret.get("metadata") or {}
        indexed[(str(metadata.get("namespace")), str(metadata.get("name")))] = secret
    return indexed


def secret_data(secret: Mapping[str, Any], where: str) -> dict[str, bytes]:
    data = secret.get("data") or {}
    if not isinstance(data, Mapping):
        raise KeyMismatch(f"{where}: its data is not a mapping")
    decoded = {}
    for key, value in data.items():
        try:
            decoded[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise KeyMismatch(f"{where}: key {key} is not base64") from None
    return decoded


def keyset_from_cluster(site: Site, existing: Existing, when: dt.datetime | None = None) -> KeySet:
    """The site's key set: each part read back from its Secret where that exists (checked to be
    whole and consistent), made new where it does not (a first install, or one interrupted
    before it stored that part)."""
    when = when or keymaker.now()

    def read(component: str, name: str) -> dict[str, bytes] | None:
        secret = existing.get((site.namespace(component), name))
        if secret is None:
            return None
        return secret_data(secret, _where(site, component, name))

    rekor = read("rekor", REKOR_SIGNER)
    fulcio = read("fulcio", FULCIO_SERVER)
    ctlog = read("ctlog", CTLOG_KEY)
    tsa = read("tsa", TSA_SERVER) if site.tsa else None
    database = read("trillian", DATABASE) if site.database is None else None
    return KeySet(
        rekor=_load_signing(site, "rekor", REKOR_SIGNER, rekor, encrypted=False)
        if rekor is not None
        else keymaker.new_rekor_key(when),
        fulcio=_load_certified(site, "fulcio", FULCIO_SERVER, fulcio, "cert")
        if fulcio is not None
        else keymaker.new_fulcio_ca(site, when),
        ctlog=_load_signing(site, "ctlog", CTLOG_KEY, ctlog, encrypted=True)
        if ctlog is not None
        else keymaker.new_ctlog_key(when),
        tsa=None
        if not site.tsa
        else _load_certified(site, "tsa", TSA_SERVER, tsa, "cert-chain")
        if tsa is not None
        else keymaker.new_tsa_chain(site, when),
        database=None
        if site.database is not None
        else _load_database(site, database)
        if database is not None
        else keymaker.new_database_auth(),
    )


def _load_signing(
    site: Site, component: str, name: str, data: Mapping[str, bytes], *, encrypted: bool
) -> SigningKey:
    where = _where(site, component, name)
    fields = ("private", "created", "password") if encrypted else ("private", "created")
    _require(data, fields, where)
    key = SigningKey(
        data["private"],
        _text(data["password"], where, "password") if encrypted else None,
        _created(data["created"], where),
    )
    public = key.public_pem(where)
    if "public" in data and data["public"] != public:
        raise KeyMismatch(f"{where}: its public key is not the private key's")
    return key


def _load_certified(
    site: Site, component: str, name: str, data: Mapping[str, bytes], chain_key: str
) -> CertifiedKey:
    where = _where(site, component, name)
    _require(data, ("private", "password", "created", chain_key), where)
    key = CertifiedKey(
        data["private"],
        _text(data["password"], where, "password"),
        _created(data["created"], where),
        data[chain_key],
    )
    key.chain(where)  # the chain parses and its first certificate is the key's
    return key


def _load_database(site: Site, data: Mapping[str, bytes]) -> DatabaseAuth:
    where = _where(site, "trillian", DATABASE)
    _require(data, ("mysql-root-password", "mysql-password", "mysql-user", "mysql-database"), where)
    return DatabaseAuth(
        root_password=_text(data["mysql-root-password"], where, "mysql-root-password"),
        password=_text(data["mysql-password"], where, "mysql-password"),
        user=_text(data["mysql-user"], where, "mysql-user"),
        database=_text(data["mysql-database"], where, "mysql-database"),
    )


def _require(data: Mapping[str, bytes], fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if f not in data]
    if missing:
        raise KeyMismatch(
            f"{where} exists but was not made by airgap (no {', '.join(missing)}); airgap never "
            f"overwrites a key: delete it if it is not in use, or restore airgap's"
        )


def _text(value: bytes, where: str, key: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyMismatch(f"{where}: {key} is not UTF-8 text") from None


def _created(value: bytes, where: str) -> dt.datetime:
    text = _text(value, where, "created")
    try:
        when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise KeyMismatch(f"{where}: created {text!r} is not a UTC time") from None
    return when


def _where(site: Site, component: str, name: str) -> str:
    return f"secret {site.namespace(component)}/{name}"


# -- deciding -------------------------------------------------------------------------------------


def plan_secrets(wanted: Iterable[Mapping[str, Any]], existing: Existing) -> list[SecretPlan]:
    """create or unchanged for each wanted Secret; KeyMismatch (one line naming the secret and
    the keys that differ, never their values) for one that exists with other contents."""
    plans = []
    for manifest in wanted:
        metadata = manifest["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        where = f"secret {namespace}/{name}"
        current = existing.get((namespace, name))
        if current is None:
            plans.append(SecretPlan(namespace, name, "create", dict(manifest)))
            continue
        have = secret_data(current, where)
        want = secret_data(manifest, where)
        differ = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if differ or (current.get("type") or "Opaque") != manifest["type"]:
            what = (
                f"{'keys' if len(differ) > 1 else 'key'} {', '.join(differ)} "
                f"{'differ' if len(differ) > 1 else 'differs'}"
                if differ
                else "its type differs"
            )
            raise KeyMismatch(
                f"{where} does not hold this site's key material ({what}); airgap never "
                f"overwrites a key: restore the secret, or uninstall with --delete-keys to "
                f"start over with new keys"
            )
        plans.append(SecretPlan(namespace, name, "unchanged", dict(manifest)))
    return plans

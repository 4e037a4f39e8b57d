"""provisioner.stack.keys and .secrets: the key material airgap makes once, as the Secrets the
charts read, and what a rerun decides for each (create, unchanged, or a refusal naming it)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from offline.trust.root import parse_trusted_root
from provisioner.stack.keys import KeySet, generate_keyset, public_material
from provisioner.stack.secrets import (
    KeyMismatch,
    ctlog_config_secret,
    index_secrets,
    keyset_from_cluster,
    plan_secrets,
    render_secrets,
    secret_data,
)
from provisioner.stack.site import Site
from provisioner.stack.trusted_root import build_trusted_root
from tests.provisioner.stack.sites import lab_site

WHEN = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def full_site() -> Site:
    return lab_site(tsa={"enabled": True}, keys={"fulcio": {"intermediate": True}})


@pytest.fixture(scope="module")
def keys(full_site: Site) -> KeySet:
    return generate_keyset(full_site, WHEN)


def by_name(secrets: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, bytes]]:
    return {
        (s["metadata"]["namespace"], s["metadata"]["name"]): secret_data(s, "test") for s in secrets
    }


def private_values(keys: KeySet) -> list[bytes]:
    """Every secret byte string of the key set: private keys and passwords."""
    values = [keys.rekor.pem, keys.fulcio.pem, keys.ctlog.pem]
    passwords = [keys.fulcio.password, keys.ctlog.password]
    if keys.tsa is not None:
        values.append(keys.tsa.pem)
        passwords.append(keys.tsa.password)
    if keys.database is not None:
        passwords += [keys.database.password, keys.database.root_password]
    return values + [p.encode() for p in passwords if p is not None]


# -- what is made ---------------------------------------------------------------------------------


def test_secrets_carry_the_names_and_keys_the_charts_read(full_site: Site, keys: KeySet) -> None:
    rendered = by_name(render_secrets(full_site, keys))
    assert {name: sorted(data) for name, data in rendered.items()} == {
        ("trillian-system", "trillian-database"): [
            "mysql-database",
            "mysql-password",
            "mysql-root-password",
            "mysql-user",
        ],
        ("rekor-system", "rekor-signer"): ["created", "private", "public"],
        ("fulcio-system", "fulcio-server-secret"): [
            "cert",
            "created",
            "password",
            "private",
            "public",
        ],
        ("fulcio-system", "fulcio-pub-key"): ["cert", "public"],
        ("ctlog-system", "ctlog-key"): ["created", "password", "private", "public"],
        ("ctlog-system", "ctlog-public-key"): ["public"],
        ("tsa-system", "tsa-server-secret"): ["cert-chain", "created", "password", "private"],
        ("tuf-system", "rekor-public-key"): ["key"],
        ("tuf-system", "fulcio-pub-key"): ["cert"],
        ("tuf-system", "ctlog-public-key"): ["public"],
        ("tuf-system", "tsa-cert-chain"): ["cert-chain"],
    }
    database = rendered[("trillian-system", "trillian-database")]
    assert database["mysql-user"] == b"trillian" and database["mysql-database"] == b"trillian"
    assert len(database["mysql-password"]) >= 32


def test_keys_are_in_the_encodings_the_servers_read(full_site: Site, keys: KeySet) -> None:
    rendered = by_name(render_secrets(full_site, keys))
    rekor = rendered[("rekor-system", "rekor-signer")]["private"]
    assert rekor.startswith(b"-----BEGIN PRIVATE KEY-----")  # the chart has no password value
    serialization.load_pem_private_key(rekor, None)

    fulcio = rendered[("fulcio-system", "fulcio-server-secret")]
    assert fulcio["private"].startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    serialization.load_pem_private_key(fulcio["private"], fulcio["password"])

    # Trillian's PEMKeyFile (ct_server) reads only the legacy OpenSSL encryption headers.
    ctlog = rendered[("ctlog-system", "ctlog-key")]
    assert b"Proc-Type: 4,ENCRYPTED" in ctlog["private"]
    key = serialization.load_pem_private_key(ctlog["private"], ctlog["password"])
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert (
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == ctlog["public"]
    )
    tsa = rendered[("tsa-system", "tsa-server-secret")]
    serialization.load_pem_private_key(tsa["private"], tsa["password"])


def test_the_fulcio_ca_has_what_fulcio_and_verifiers_check(full_site: Site, keys: KeySet) -> None:
    intermediate, root = x509.load_pem_x509_certificates(keys.fulcio.chain_pem)
    intermediate.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    for certificate, path_length in ((root, 1), (intermediate, 0)):
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        assert constraints.value.path_length == path_length
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CODE_SIGNING in eku
    assert root.not_valid_after_utc - root.not_valid_before_utc == dt.timedelta(days=3650)
    # Fulcio issues with the intermediate: its key is the one in the secret.
    assert keys.fulcio.public_pem("test") == intermediate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_without_an_intermediate_the_root_issues() -> None:
    plain = generate_keyset(lab_site(), WHEN)
    (root,) = x509.load_pem_x509_certificates(plain.fulcio.chain_pem)
    assert root.subject == root.issuer
    assert plain.tsa is None


def test_the_tsa_leaf_is_only_for_timestamping(keys: KeySet) -> None:
    assert keys.tsa is not None
    leaf, root = x509.load_pem_x509_certificates(keys.tsa.chain_pem)
    leaf.verify_directly_issued_by(root)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_public_halves_make_a_trusted_root_the_verifier_reads(
    full_site: Site, keys: KeySet
) -> None:
    public = public_material(keys)
    document = build_trusted_root(public.trusted_root_spec(full_site))
    root = parse_trusted_root(json.dumps(document))
    assert root is not None
    (tlog,) = document["tlogs"]
    assert tlog["baseUrl"] == "http://rekor-server.rekor-system.svc"
    assert tlog["publicKey"]["validFor"]["start"] == "2026-12-01T12:00:00Z"
    rekor_der = serialization.load_pem_public_key(public.rekor).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(tlog["publicKey"]["rawBytes"]) == rekor_der
    (ca,) = document["certificateAuthorities"]
    assert len(ca["certChain"]["certificates"]) == 2  # intermediate, then root
    assert document["ctlogs"][0]["baseUrl"] == "http://ctlog.ctlog-system.svc/sigstore"
    assert len(document["timestampAuthorities"]) == 1


def test_tuf_targets_are_the_public_files_under_their_usual_names(
    full_site: Site, keys: KeySet
) -> None:
    public = public_material(keys)
    trusted_root = json.dumps(build_trusted_root(public.trusted_root_spec(full_site))).encode()
    targets = {t.name: t.data for t in public.tuf_targets(trusted_root)}
    assert sorted(targets) == [
        "ctfe.pub",
        "fulcio_intermediate_v1.crt.pem",
        "fulcio_v1.crt.pem",
        "rekor.pub",
        "trusted_root.json",
        "tsa_leaf.crt.pem",
        "tsa_root.crt.pem",
    ]
    intermediate, root = x509.load_pem_x509_certificates(keys.fulcio.chain_pem)
    assert x509.load_pem_x509_certificate(targets["fulcio_v1.crt.pem"]) == root
    assert x509.load_pem_x509_certificate(targets["fulcio_intermediate_v1.crt.pem"]) == intermediate
    assert targets["rekor.pub"] == public.rekor
    assert not any(b"PRIVATE KEY" in value for value in targets.values())


def test_the_tuf_namespace_gets_no_private_key_and_no_password(
    full_site: Site, keys: KeySet
) -> None:
    tuf = [s for s in render_secrets(full_site, keys) if s["metadata"]["namespace"] == "tuf-system"]
    assert len(tuf) == 4
    forbidden = private_values(keys)
    for secret in tuf:
        for key, value in secret_data(secret, "test").items():
            assert b"PRIVATE KEY" not in value, (secret["metadata"]["name"], key)
            assert not any(part in value for part in forbidden), (secret["metadata"]["name"], key)


def test_no_secret_holds_another_components_private_key(full_site: Site, keys: KeySet) -> None:
    """Each private key is in its own component's namespace only (the CT log's twice: its key
    secret and the config secret ct_server mounts)."""
    config = ctlog_config_secret(full_site, keys, 42)
    where = {
        keys.rekor.pem: {"rekor-system"},
        keys.fulcio.pem: {"fulcio-system"},
        keys.ctlog.pem: {"ctlog-system"},
    }
    for secret in [*render_secrets(full_site, keys), config]:
        for value in secret_data(secret, "test").values():
            for pem, namespaces in where.items():
                if pem in value:
                    assert secret["metadata"]["namespace"] in namespaces


def test_ct_server_config_names_the_tree_key_and_fulcio_root(full_site: Site, keys: KeySet) -> None:
    data = secret_data(ctlog_config_secret(full_site, keys, 8127364), "test")
    assert sorted(data) == ["config", "fulcio-0", "private", "public"]
    config = data["config"].decode()
    assert "log_id: 8127364" in config
    assert 'backend_spec: "trillian-logserver.trillian-system:8091"' in config
    assert 'prefix: "sigstore"' in config
    assert 'roots_pem_file: "/ctfe-keys/fulcio-0"' in config
    assert f'password: "{keys.ctlog.password}"' in config
    assert data["private"] == keys.ctlog.pem
    assert data["fulcio-0"] == public_material(keys).fulcio_root


def test_an_external_database_gets_no_password_secret() -> None:
    external = lab_site(database={"external": {"host": "db.lab", "secret": "trillian-db"}})
    keys = generate_keyset(external, WHEN)
    assert keys.database is None
    names = [s["metadata"]["name"] for s in render_secrets(external, keys)]
    assert "trillian-database" not in names


# -- what a rerun decides -------------------------------------------------------------------------


def test_a_first_install_creates_every_secret(full_site: Site) -> None:
    keys = keyset_from_cluster(full_site, {}, WHEN)
    plans = plan_secrets(render_secrets(full_site, keys), {})
    assert {p.action for p in plans} == {"create"}
    assert len(plans) == 11


def test_a_rerun_reads_the_keys_back_and_changes_nothing(full_site: Site, keys: KeySet) -> None:
    existing = index_secrets(
        [*render_secrets(full_site, keys), ctlog_config_secret(full_site, keys, 42)]
    )
    again = keyset_from_cluster(full_site, existing, WHEN + dt.timedelta(days=30))
    assert again == keys  # the same bytes: nothing was made anew
    plans = plan_secrets(
        [*render_secrets(full_site, again), ctlog_config_secret(full_site, again, 42)], existing
    )
    assert [p.action for p in plans] == ["unchanged"] * 12


def test_an_interrupted_install_keeps_what_it_stored_and_makes_the_rest(
    full_site: Site, keys: KeySet
) -> None:
    stored = [
        s
        for s in render_secrets(full_site, keys)
        if s["metadata"]["name"] in ("rekor-signer", "trillian-database")
    ]
    existing = index_secrets(stored)
    resumed = keyset_from_cluster(full_site, existing, WHEN)
    assert resumed.rekor == keys.rekor and resumed.database == keys.database
    assert resumed.fulcio != keys.fulcio  # never stored, so made now
    actions = {
        (p.namespace, p.name): p.action
        for p in plan_secrets(render_secrets(full_site, resumed), existing)
    }
    assert actions[("rekor-system", "rekor-signer")] == "unchanged"
    assert actions[("fulcio-system", "fulcio-server-secret")] == "create"


def mismatch(full_site: Site, keys: KeySet, existing: list[dict[str, Any]]) -> str:
    indexed = index_secrets(existing)
    with pytest.raises(KeyMismatch) as info:
        plan_secrets(render_secrets(full_site, keyset_from_cluster(full_site, indexed)), indexed)
    message = str(info.value)
    assert "\n" not in message
    assert not any(value.decode() in message for value in private_values(keys))
    return message


def test_a_public_secret_holding_another_key_is_refused_by_name(
    full_site: Site, keys: KeySet
) -> None:
    existing = render_secrets(full_site, keys)
    other = render_secrets(full_site, generate_keyset(full_site, WHEN))
    swapped = [
        next(o for o in other if o["metadata"] == s["metadata"])
        if s["metadata"]["namespace"] == "tuf-system"
        and s["metadata"]["name"] == "rekor-public-key"
        else s
        for s in existing
    ]
    message = mismatch(full_site, keys, swapped)
    assert message.startswith("secret tuf-system/rekor-public-key does not hold this site's key")
    assert "(key key differs)" in message and "never overwrites" in message


def test_a_key_secret_whose_public_half_was_edited_is_refused(
    full_site: Site, keys: KeySet
) -> None:
    existing = copy.deepcopy(render_secrets(full_site, keys))
    for secret in existing:
        if secret["metadata"]["name"] == "rekor-signer":
            secret["data"]["public"] = base64.b64encode(public_material(keys).ctlog).decode()
    message = mismatch(full_site, keys, existing)
    assert message == "secret rekor-system/rekor-signer: its public key is not the private key's"


def test_a_secret_airgap_did_not_make_is_never_taken_over(full_site: Site, keys: KeySet) -> None:
    """A fulcio-server-secret as the chart's createcerts job makes it (no `created`)."""
    existing = copy.deepcopy(render_secrets(full_site, keys))
    for secret in existing:
        if secret["metadata"]["name"] == "fulcio-server-secret":
            del secret["data"]["created"]
    message = mismatch(full_site, keys, existing)
    assert message.startswith(
        "secret fulcio-system/fulcio-server-secret exists but was not made by airgap (no created)"
    )


def test_another_tree_for_the_ct_log_is_refused(full_site: Site, keys: KeySet) -> None:
    existing = index_secrets([ctlog_config_secret(full_site, keys, 42)])
    with pytest.raises(
        KeyMismatch, match=r"^secret ctlog-system/ctlog-secret .*\(key config differs\)"
    ):
        plan_secrets([ctlog_config_secret(full_site, keys, 43)], existing)


def test_undecodable_data_is_refused_by_name(full_site: Site, keys: KeySet) -> None:
    existing = copy.deepcopy(render_secrets(full_site, keys))
    existing[1]["data"]["private"] = "not base64!"
    name = existing[1]["metadata"]["name"]
    with pytest.raises(
        KeyMismatch, match=f"^secret rekor-system/{name}: key private is not base64"
    ):
        keyset_from_cluster(full_site, index_secrets(existing))


def test_a_ct_log_password_that_could_rewrite_the_config_is_refused(
    full_site: Site, keys: KeySet
) -> None:
    """A password read back from the cluster goes into ct_server's config in quotes."""
    hostile = dataclasses.replace(
        keys, ctlog=dataclasses.replace(keys.ctlog, password='x" } } log_configs { config {')
    )
    with pytest.raises(KeyMismatch, match=r"^secret ctlog-system/ctlog-key: the CT log key's"):
        ctlog_config_secret(full_site, hostile, 42)

"""The test cluster's PKI: one CA for everything (apiserver, kubelet, clients, the internal
registry), the service-account signing key, and kubeconfigs. EC P-256 throughout (fast to make,
accepted by every component). Private keys are written 0600."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.cluster.network import Addresses
from tests.stack.pki import cert_pem, ec_key, pkcs8_pem, public_pem, write_private, write_public

CLUSTER_NAME = "airgap-test"
NODE_NAME = "airgap-node"
ADMIN_USER = "airgap-admin"
# The name the internal registry's certificate carries besides the node IP.
REGISTRY_NAME = "registry.airgap.internal"


@dataclass(frozen=True)
class ClusterPKI:
    directory: Path

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def service_account_public(self) -> Path:
        return self.directory / "sa.pub"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    def kubeconfig(self, user: str) -> Path:
        return self.directory.parent / f"{user}.kubeconfig"


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_cluster_pki(directory: Path, addresses: Addresses) -> ClusterPKI:
    pki = ClusterPKI(directory)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=30)
    ca_key = ec_key()
    ca_name = _name("airgap test cluster CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    write_public(pki.ca, cert_pem(ca))
    write_private(pki.key("ca"), pkcs8_pem(ca_key))

    def leaf(
        name: str,
        subject: x509.Name,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> None:
        key = ec_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        write_public(pki.cert(name), cert_pem(builder.sign(ca_key, hashes.SHA256())))
        write_private(pki.key(name), pkcs8_pem(key))

    service_dns = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
    leaf(
        "apiserver",
        _name("kube-apiserver"),
        dns=("localhost", *service_dns, "kubernetes.default.svc.cluster.local"),
        ips=("127.0.0.1", addresses.node_ip, addresses.kubernetes_service_ip),
    )
    leaf("admin", _name(ADMIN_USER, "system:masters"))
    leaf(
        "node",
        _name(f"system:node:{NODE_NAME}", "system:nodes"),
        (NODE_NAME,),
        (addresses.node_ip,),
    )
    leaf("registry", _name(REGISTRY_NAME), (REGISTRY_NAME,), (addresses.node_ip,))
    sa_key: ec.EllipticCurvePrivateKey = ec_key()
    write_private(pki.service_account_key, pkcs8_pem(sa_key))
    write_public(pki.service_account_public, public_pem(sa_key))
    for user, cert in (("admin", "admin"), ("kubelet", "node")):
        write_private(pki.kubeconfig(user), kubeconfig(pki, addresses, cert).encode())
    return pki


def kubeconfig(pki: ClusterPKI, addresses: Addresses, cert: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {CLUSTER_NAME}
  cluster:
    server: https://{addresses.node_ip}:6443
    certificate-authority: {pki.ca}
users:
- name: {cert}
  user:
    client-certificate: {pki.cert(cert)}
    client-key: {pki.key(cert)}
contexts:
- name: {CLUSTER_NAME}
  context: {{cluster: {CLUSTER_NAME}, user: {cert}}}
current-context: {CLUSTER_NAME}
"""

"""The Sigstore TUF repository, built and signed offline with python-tuf (`airgap trust`).

A repository directory holds everything the operator keeps, and the published repository:

    REPO/policy.json            expiry policy: days each role's metadata stays valid
    REPO/keys/root/root-N.key   root keys (PKCS#8 PEM, 0600); move them to offline media after
                                init and give `--root-keys DIR` when the root is signed again
    REPO/keys/online/*.key      targets, snapshot and timestamp keys, kept apart from root's
    REPO/roots/N.root.json      every signed root, in order
    REPO/current -> generations/N   the published generation, flipped atomically by each build:
        repository/             what a TUF client fetches: N.root.json, timestamp.json,
                                N.snapshot.json, N.targets.json, targets/<sha256>.<name>
        root.json               the root to pin (`cosign initialize --root`)
        tuf-root.secret.json    the `tuf-root` Secret policy-controller's TrustRoot mirrorFS reads

Modules: `layout` (paths, the writer's lock), `policy` (expiry), `keys` (key files and
signers), `ceremony` (root keys, root metadata, rotation), `targets` (what is published, checked
and given its Sigstore usage), `files` (reading one metadata file), `published` (the current
generation read back and checked against the root), `client` (python-tuf's client over a
directory: the check every build and status run), `build` (a generation, checked then made
current), `refresh`, `status`, `secret` (the `tuf-root` Secret) and `serving` (the repository as
a ConfigMap for a static web server).
"""

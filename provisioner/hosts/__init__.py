"""Hosts outside the cluster: the playbooks of playbooks/ run through ansible-runner.

`inventory` reads and checks an Ansible inventory (host keys must be checked), `material`
gathers what the playbooks install (the site's trust, the checkpoint seed, the registry's CA,
the verifier's wheelhouse), `wheelhouse` builds and finds the verifier's wheels, `run` runs a
playbook and summarises it per host.
"""

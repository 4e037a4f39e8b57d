"""The operator's command line: the `airgap` entry point and the bundle commands."""

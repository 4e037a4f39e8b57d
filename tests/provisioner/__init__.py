"""Tests of provisioner/, in one folder per subpackage (bundle/, archive/, create/, ...)."""

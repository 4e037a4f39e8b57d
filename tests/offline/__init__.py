"""Tests of offline/, in one folder per subpackage (tlog/, oci/, trust/, ...)."""

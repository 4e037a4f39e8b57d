"""Trust material: the trusted root and its authorities' validity windows, keys, Fulcio
certificates, SCTs, RFC 3161 timestamps, and signer identity rules."""

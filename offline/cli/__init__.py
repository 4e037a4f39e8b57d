"""The verifier's command line: the parser, shared options, and one module per command family."""

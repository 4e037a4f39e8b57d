"""Bundle archives: one deterministic tar stream, split into parts with a signed parts list,
and its safe extraction."""

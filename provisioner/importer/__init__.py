"""bundle import: pushing a verified bundle into a registry or layout, its journal, the
record of imported sequences, and the report."""

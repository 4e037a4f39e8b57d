"""Transparency logs: Merkle proofs, signed notes and checkpoints, witnesses, the checkpoint
store and its rules, pinning, log entry checks, and the Rekor client."""

"""Copying image graphs with digests unchanged: the mirror, the bundle's shared layout,
and the inventory of what a target holds."""

"""bundle create: resolving images, pulling and rendering charts, and writing a bundle."""

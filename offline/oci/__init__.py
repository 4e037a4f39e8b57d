"""OCI images: digests, streamed blobs, the manifest model, references, referrers, image
layouts, and the registry client (transport, auth, upload, download)."""

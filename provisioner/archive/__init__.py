"""Bundle archives: a bundle directory as one signed archive stream, split into parts to carry
across the gap, with a signed parts list, and its safe extraction.

One concern per module:

    names       where an archive's files are: the stream, its parts, the parts list, its signature
    reading     reading those files: bounded reads of small ones, parts opened without waiting
    parts_list  the signed parts list: its model, strict parser, writing and verified loading
    layout      what a bundle holds: every path its manifest allows, with sizes and bounds
    write       writing the archive: the tar stream, compression, the parts and the parts list
    check       checking the parts against the signed parts list, naming every damaged one
    extract     safe extraction into a new directory, every member checked as it arrives

    from provisioner.archive.check import check_parts
    from provisioner.archive.extract import extract_archive
    from provisioner.archive.write import write_archive

    parts = write_archive(Path("bundle"), Path("/media/usb/site"), compress="zstd",
                          split_size=4 * 1024**3, signing_key=load_private_key("operator.key"))
    report = check_parts(Path("/media/usb/site.parts.json"), load_public_key("operator.pub"))
    extract_archive(Path("/media/usb/site.parts.json"), load_public_key("operator.pub"), dest)

On disk, for an output prefix `P`:

    P.tar.zst                  the whole stream when it is not split (`P.tar` without compression)
    P.tar.zst.part0001, ...    or the stream cut into parts of at most `split_size` bytes
    P.parts.json               the parts list (format `airgap-parts/v1`), canonical JSON
    P.parts.json.sig           its detached signature: the format of `airgap-bundle.json.sig`,
                               made with the same operator key
    P.parts.json.sigstore.json or, signed keylessly, a Sigstore bundle (bundle/keyless.py)
                               by the identity that signed the bundle

The signer (`signing_key`) is a ManifestSigner and the trust a ManifestTrust
(provisioner/bundle/detached.py): an operator key pair, or a KeylessSigner and a KeylessTrust. One
trust checks both the parts list and the bundle's manifest, so both must be signed alike.

The stream is one POSIX (pax) tar of the bundle directory, zstd-compressed or not:
`airgap-bundle.json` and its signature (`airgap-bundle.json.sig`, or for a keyless signer
`airgap-bundle.json.sigstore.json`; a signature of the other kind is not carried) first, then
every directory and file in sorted path order; mtime 0, uid/gid 0, no user or group names,
mode 0755 for directories and executables and 0644 otherwise. It holds nothing but the bundle
layout: the blobs, charts and files the manifest lists, the OCI layout's `oci-layout` and
`index.json` (at the SHA-256 the manifest records for them), and their directories.

The parts list:

    {"compression": "zstd" | "none",
     "format": "airgap-parts/v1",
     "manifestSha256": "<hex SHA-256 of the airgap-bundle.json inside>",
     "parts": [{"name": "P.tar.zst.part0001", "sha256": "<hex>", "size": <bytes>}, ...],
     "sha256": "<hex SHA-256 of the whole stream: all parts in order>",
     "size": <bytes of the whole stream>,
     "tarSize": <bytes of the tar once decompressed>}

Writing streams: each file is read once and checked against the manifest on the way, each part
is hashed as it is written, and memory stays flat whatever the blob sizes. Parts are written as
`.partial` files and renamed when complete; the signature and then the parts list come last,
atomically, so a failed or interrupted create never leaves a parts list behind, and a failed
one removes every part it wrote.

Checking verifies the parts list's signature before anything else is read, then every part's
size and SHA-256, and names every missing or damaged part (only those need sending again).
Extracting checks the parts, then streams them through zstd and a tar reader into a temporary
directory next to the destination, renamed into place at the end. With a one-line error and
nothing left behind it refuses: links, devices, FIFOs, sparse files; absolute names, `..`,
NUL, backslashes or control characters in names; duplicates; anything outside the bundle
layout; sizes that differ from the manifest's or exceed a bound; a truncated stream; data after
the end of the tar; and a stream that unpacks to more than its parts list records.
"""

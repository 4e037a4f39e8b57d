"""The private Sigstore stack: what the install command builds on.

- site.py: site.yaml, read strictly; mapping.py: where `bundle import` put each image;
- keys.py, ca.py: the key material made once; secrets.py: it as the Secrets the charts read,
  and what a rerun decides for each (create, unchanged, or a refusal naming the secret);
- values.py (with charts-values/): each chart's values; chart_check.py: keys, schema and images
  checked before anything is applied; render.py: both in one call; storage.py: volumes;
- trusted_root.py: the trusted_root.json assembled from the public halves.
"""

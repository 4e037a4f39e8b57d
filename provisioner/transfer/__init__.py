"""Moving bundles across the gap: resumable SFTP push to a bastion."""

"""The gateway's own files on this host: person keys, the files Caddy reads, its CA, its access log."""

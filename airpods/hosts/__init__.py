"""Other airpods hosts behind this one's gateway: their trust (CA, key) and what they serve."""

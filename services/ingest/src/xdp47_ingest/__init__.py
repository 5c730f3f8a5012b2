"""XDP47 ingest."""

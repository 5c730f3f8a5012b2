"""XDP47 scheduler."""

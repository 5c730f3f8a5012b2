"""XDP47 api."""

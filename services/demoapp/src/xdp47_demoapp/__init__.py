"""XDP47 demoapp."""

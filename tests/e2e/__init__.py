"""End-to-end tests: the services as processes, devices as agent processes."""

"""XDP47 agent."""

"""XDP47 operator CLI."""

"""Helpers shared by the test suites (service URLs, throwaway databases)."""

"""XDP47 control-plane REST API (FastAPI). ``create_app`` builds the app."""

from xdp47_api.app import create_app

__all__ = ["create_app"]

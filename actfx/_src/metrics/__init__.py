"""Implementation (private: import from the public namespaces, see actfx/__init__.py)."""

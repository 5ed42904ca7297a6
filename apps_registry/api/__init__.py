"""The JSON API for CI pipelines (Django REST framework, OpenAPI by drf-spectacular)."""

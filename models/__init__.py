"""Model and ensemble configs (TOML). Installed as the package wflwv.configs.models (see pyproject.toml)."""

"""Pipeline files (TOML) and their inputs. Installed as the package wflwv.configs.pipelines (see pyproject.toml)."""

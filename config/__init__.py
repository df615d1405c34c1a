"""Settings: one YAML file validated into typed, frozen settings, plus environment overrides.

``config`` imports nothing else of this project.  Each section lives in its own module
(``config.proxy``, ``config.tracking``, ``config.exporters``, ``config.admin``);
``config.settings`` composes them and ``config.loader`` reads YAML and the environment.
"""

from tests.integration.conftest import copy_project, project  # noqa: F401  (same per-test project)

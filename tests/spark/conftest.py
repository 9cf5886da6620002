"""One local SparkSession for every Spark test: local[2], few partitions, Delta, lake on a temp dir."""

import pytest

from plantlake.core.config import LakeSettings, Settings, load_settings


@pytest.fixture(scope="session")
def lake_settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("lake")
    base = load_settings()
    return base.model_copy(
        update={
            "lake": LakeSettings(root=f"file://{root}/lake", checkpoint_root=f"file://{root}/chk")
        }
    )


@pytest.fixture(scope="session")
def spark(lake_settings):
    from plantlake.adapters.spark import get_spark

    session = get_spark(lake_settings, app_name="plantlake-tests", master="local[2]")
    yield session
    session.stop()


@pytest.fixture
def own_lake(lake_settings, tmp_path) -> Settings:
    """Settings with a lake of this test's own, for tests that need to know every table in it
    (the session lake collects tables from every Spark test)."""
    lake = LakeSettings(root=f"file://{tmp_path}/lake", checkpoint_root=f"file://{tmp_path}/chk")
    return lake_settings.model_copy(update={"lake": lake})

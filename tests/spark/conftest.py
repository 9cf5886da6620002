"""One local SparkSession for every Spark test: local[2], few partitions, Delta, lake on a temp dir."""

import pytest

from plantlake.config import LakeSettings, Settings, load_settings


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
    from plantlake.spark import get_spark

    session = get_spark(lake_settings, app_name="plantlake-tests", master="local[2]")
    yield session
    session.stop()

import pytest


@pytest.fixture(scope="session", autouse=True)
def _prepared(data_dir):
  """Commands and runs read the digits, their evaluator and the chorales: prepared once for
  the session before the first test here (tests/conftest.py:data_dir)."""
  return data_dir

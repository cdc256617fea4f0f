import pytest
from helpers import MeanClassifier


@pytest.fixture
def mean_classifier():
    return MeanClassifier()

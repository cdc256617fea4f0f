import numpy as np
import pytest

from stgcn_rt.errors import StgcnError
from stgcn_rt.model.graph import hop_distance, normalize_digraph, spatial_adjacency
from stgcn_rt.model.layouts import LAYOUTS, Layout, get_layout

CHAIN4 = Layout("chain4", ("a", "b", "c", "d"), ((0, 1), (1, 2), (2, 3)), center=0)


def test_hop_distance_stops_at_max_hop():
    d = hop_distance(4, ((0, 0), (1, 1), (2, 2), (3, 3)) + CHAIN4.edges, max_hop=1)
    assert d[0, 0] == 0 and d[0, 1] == 1
    assert np.isinf(d[0, 2]) and np.isinf(d[0, 3])


def test_normalize_digraph_divides_columns_by_degree():
    a = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    n = normalize_digraph(a)
    np.testing.assert_allclose(n, [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])


def test_spatial_partition_of_a_chain_worked_by_hand():
    """Chain 0-1-2-3, centre 0. Column degrees (self-links included) are 2, 3, 3, 2.

    Distances to the centre are 0, 1, inf, inf (max_hop=1). The reference's quirk: joints 2 and 3
    are both 'infinitely' far, so they compare as equally far and the edge 2->3 lands in the
    root+centripetal partition (A[1]) instead of the centrifugal one.
    """
    a = spatial_adjacency(CHAIN4)
    expected = np.zeros((3, 4, 4))
    expected[0] = np.diag([1 / 2, 1 / 3, 1 / 3, 1 / 2])
    expected[1][1, 0] = 1 / 2  # 1 is farther than 0: centripetal for joint 0
    expected[1][2, 1] = 1 / 3  # inf > 1
    expected[1][3, 2] = 1 / 3  # inf == inf: root (the quirk)
    expected[1][2, 3] = 1 / 2  # inf == inf: root (the quirk)
    expected[2][0, 1] = 1 / 3  # 0 is closer to the centre than 1: centrifugal
    expected[2][1, 2] = 1 / 3
    np.testing.assert_allclose(a, expected)


def test_centre_is_configurable():
    a = spatial_adjacency(CHAIN4, center=3)
    # seen from joint 3, joint 2 is the closer one: 2->3 message is centrifugal for 3? no: [j=2,i=3]
    # has d_j=1 > d_i=0, so it is centripetal (partition 1)
    assert a[1][2, 3] == pytest.approx(1 / 2)
    assert a[2][3, 2] == pytest.approx(1 / 3)
    assert not np.allclose(a, spatial_adjacency(CHAIN4, center=0))


def test_centre_out_of_range_is_an_error():
    with pytest.raises(StgcnError, match="centre joint 9"):
        spatial_adjacency(CHAIN4, center=9)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_partitions_the_normalised_adjacency(name):
    layout = get_layout(name)
    a = spatial_adjacency(layout)
    v = layout.num_joints
    assert a.shape == (3, v, v)
    # The partitions split the normalised adjacency: every column sums to one in total.
    np.testing.assert_allclose(a.sum(axis=0).sum(axis=0), np.ones(v))
    # Each message lands in exactly one partition.
    assert ((a > 0).sum(axis=0) <= 1).all()
    edges = set(layout.edges)
    assert len(edges) == len(layout.edges)
    assert all(0 <= i < v and 0 <= j < v and i != j for i, j in edges)


def test_layout_sizes_and_centres():
    assert {n: (lay.num_joints, lay.center) for n, lay in LAYOUTS.items()} == {
        "mediapipe33": (33, 0), "openpose18": (18, 1), "coco17": (17, 0), "ntu25": (25, 20),
    }
    assert len(get_layout("mediapipe33").edges) == 35  # MediaPipe's POSE_CONNECTIONS


def test_unknown_layout_names_the_choices():
    with pytest.raises(StgcnError, match="mediapipe33, openpose18, coco17, ntu25"):
        get_layout("kinect")

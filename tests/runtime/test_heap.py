import gc

from stgcn_rt.runtime.heap import startup_objects_frozen


def test_objects_alive_at_startup_leave_the_collectors_reach_until_the_block_ends():
    survivor = [object()]  # a tracked container made before the block
    with startup_objects_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert not any(o is survivor for o in gc.get_objects())  # frozen objects are not walked
        later = [object()]
        assert any(o is later for o in gc.get_objects())
    assert gc.get_freeze_count() == 0
    assert any(o is survivor for o in gc.get_objects())  # back in the collector's reach for shutdown

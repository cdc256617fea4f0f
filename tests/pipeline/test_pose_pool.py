"""MediaPipe's workers as a pose stage: each frame a step of its own, a crashed worker's frame
answered without a person, and closing gives back the frames no worker took, never answered."""

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

from helpers import Answers

from stgcn_rt.pipeline.pose_pool import PosePool
from stgcn_rt.pipeline.posed import PosedStep


def test_each_frame_is_answered_as_a_step_of_its_own_and_a_crash_without_a_person():
    answers = Answers()
    pool = PosePool(answers, workers=1, persons=5)
    try:
        posed, crashed = Future(), Future()
        pool._pending.update({posed: "posed", crashed: "crashed"})
        step = PosedStep.failed(1, 5, "none")
        step.keypoints[0, 0, 3] = 0.5
        step.error = None
        posed.add_done_callback(pool._settled)
        crashed.add_done_callback(pool._settled)
        posed.set_result(step)
        crashed.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
        first, second = answers.wait(["posed", "crashed"], timeout=0)
    finally:
        pool.close()
    assert [jobs for jobs, _ in answers.steps] == [["posed"], ["crashed"]]
    assert first.error is None and first.found == 0 and first.keypoints[0, 3, 0] == 0.5  # counted where posed
    assert second.error == ("pose worker failed: BrokenProcessPool: A process in the process pool was "
                            "terminated abruptly")
    assert second.keypoints.shape == (5, 33, 3) and not second.keypoints.any() and second.found == 0


def test_closing_gives_back_the_frames_no_worker_took_and_never_answers_them():
    answers = Answers()
    pool = PosePool(answers, workers=1)
    waiting = Future()
    pool._pending[waiting] = "waiting"
    waiting.add_done_callback(pool._settled)
    assert pool.close() == ["waiting"]
    assert waiting.cancelled() and not answers.steps and not pool._pending

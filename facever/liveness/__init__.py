"""Liveness: an active head-turn challenge checked by 3D parallax (inference side: NumPy + OpenCV).

A photo is a plane; a head is not. The person is asked to turn their head left and right in a random
order; across the turn the nose tip must move out of the plane of the eyes and mouth corners, which
no printed or displayed still photo, however tilted or moved, can do (:mod:`.geometry`).

    from facever.liveness import ChallengeStore, check_liveness, new_challenge
    challenge = new_challenge()                       # id, steps e.g. ("right", "left"), expiry
    result = check_liveness(frames, challenge, verifier)
    result.live, result.reason, result.to_dict()

What it does not stop: a video replay that happens to answer the challenge, a sequence of photos of
the person turning, masks, deepfakes, frames injected into the camera feed (see the README).
"""

from facever.liveness.challenge import DIRECTIONS, Challenge, ChallengeError, new_challenge, random_steps
from facever.liveness.challenge_store import ChallengeStore
from facever.liveness.check import FrameObservation, LivenessResult, check_liveness, decide, detect_turns, observe_frames
from facever.liveness.thresholds import LivenessThresholds
from facever.liveness.video import read_video_frames

__all__ = [
    "Challenge", "ChallengeError", "ChallengeStore", "DIRECTIONS", "FrameObservation", "LivenessResult",
    "LivenessThresholds", "check_liveness", "decide", "detect_turns", "new_challenge", "observe_frames",
    "random_steps", "read_video_frames",
]

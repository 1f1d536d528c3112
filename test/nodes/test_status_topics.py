"""Status and progress topics are latched (reliable, transient local, depth 1), so a subscriber
that joins late -- `ros2 topic echo --once`, a dashboard started after the graph -- gets the
current state at once. Streams (action, goal_score, observations) are not: an old value there
would be acted on or read as the present. The depth-1 behaviour end to end, with a late
subscriber after a training run, is in test_trainer_node.py. (arm_status and recorder_status
are also republished every 0.2 s and 0.5 s.)"""
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

# topic -> the node (process) that publishes it
LATCHED = {"arm_status": "arm_node", "recorder_status": "recorder_node", "training_progress": "trainer_node",
           "checkpoint": "trainer_node", "goal_image": "goal_node", "goal_reached": "policy_node"}
STREAMS = {"goal_score": "policy_node", "action": "policy_node"}


def _publisher_qos(ros, topic, procs):
    ros.wait_for(lambda: ros.node.get_publishers_info_by_topic(f"/{topic}"), 90, f"a publisher on /{topic}",
                 procs=procs)
    return [info.qos_profile for info in ros.node.get_publishers_info_by_topic(f"/{topic}")]


def test_status_topics_are_latched_and_streams_are_not(procs, tmp_path):
    ros = procs
    params = {"recorder_node": {"output_dir": str(tmp_path / "bags")}, "trainer_node": {"start_on_launch": False},
              "policy_node": {"model_path": "widowx_stable_crl.pt", "device": "cpu"}}
    nodes = sorted(set(LATCHED.values()) | set(STREAMS.values()))
    started = [ros.start(node, **params.get(node, {})) for node in nodes]
    for topic in LATCHED:
        for qos in _publisher_qos(ros, topic, started):
            assert (qos.durability, qos.reliability) == (DurabilityPolicy.TRANSIENT_LOCAL, ReliabilityPolicy.RELIABLE), \
                f"/{topic}: {qos}"
    for topic in STREAMS:
        for qos in _publisher_qos(ros, topic, started):
            assert qos.durability == DurabilityPolicy.VOLATILE, f"/{topic}: {qos}"


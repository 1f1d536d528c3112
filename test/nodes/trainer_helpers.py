"""What the trainer_node tests share."""


def start_trainer_heard(ros, **params):
    """trainer_node started idle, then asked to train once this test hears its progress topic:
    the topic keeps only the latest message (a late subscriber gets the current state), so a run
    started at launch could pass its first stages before the subscription matched."""
    from std_srvs.srv import Trigger
    proc = ros.start("trainer_node", start_on_launch=False, **params)
    ros.wait_for(lambda: ros.node.count_publishers("/training_progress") > 0, 60, "trainer_node's progress topic",
                 procs=[proc])
    ros.spin_for(0.5)  # discovery has matched both ends
    response = ros.call(Trigger, "train")
    # a retried request whose first reply was lost finds its own run going
    assert response.success or response.message == "training is already running", response.message
    return proc
